"""The chassis' promises under faults, on the real RabbitMQ and the real store. Each of these failed on the
foundation's code:

- a fresh event is published in the next relay pass even behind sixty events backing off, through an index;
- an event no queue takes for too long is dead-lettered with its reason, not retried forever in silence;
- a consumer deployed after its producer still receives what was published before its first start;
- a retry queue deleted behind the subscriber's back is declared again, and the poison event is not lost;
- an event that needs a fact not yet arrived waits for it (40 s here) instead of being dead-lettered;
- a worker drops an RPC request whose caller's deadline has passed, and a chained call inherits the deadline;
- every durable queue is a quorum queue with a delivery limit.
"""

from __future__ import annotations

import time
from datetime import timedelta

import requests
from nameko.exceptions import RemoteError
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook
from nameko.testing.utils import get_container

from chassis.clock import utcnow
from chassis.dlq import DeadLetterQueue
from chassis.errors import NotYet
from chassis.events import Event, make_event
from chassis.outbox import OUTBOX_INDEX, OutboxRelay, outbox_entry
from chassis.rpc import DEADLINE_KEY, TimedRpcProxy, rpc
from chassis.service import ServiceBase
from chassis.store import Store, StoreSession, connect
from chassis.subscriber import subscribe
from chassis.testing import wait_for
from chassis.tests.integration.test_messaging_guarantees import ParcelSent, Shop, Warehouse
from chassis.topology import Handler, Topology

MANAGEMENT = ("http://127.0.0.1:15672/api", ("guest", "guest"))


class Audit(ServiceBase):
    """A second consumer of the warehouse's parcels, deployed after the warehouse started publishing."""

    name = "audit"
    store = Store("audit")

    @subscribe("warehouse", "parcel.sent", ParcelSent)
    def record(self, event: Event) -> None:
        self.store.insert_once("seen", {"_id": event.payload["parcel_id"]})


class Kitchen(ServiceBase):
    """A consumer that cannot cook an order before the recipe it needs has arrived (events in any order)."""

    name = "kitchen"
    store = Store("kitchen")

    @subscribe("warehouse", "parcel.sent", ParcelSent)
    def cook(self, event: Event) -> None:
        if self.store.db.recipes.find_one({"_id": "soup"}) is None:
            raise NotYet("no recipe yet")
        self.store.insert_once("meals", {"_id": event.payload["parcel_id"]})


class Clock(ServiceBase):
    """Answers with the deadline its worker was given, and asks another service on behalf of its caller."""

    name = "clock"
    echo = TimedRpcProxy("echo", timeout=30)

    @rpc
    def deadline_seen_downstream(self) -> float:
        return self.echo.deadline()


class Echo(ServiceBase):
    name = "echo"
    store = Store("echo")

    @rpc
    def deadline(self) -> float:
        """The deadline this worker's request carried."""
        return float(self.store.context_data[DEADLINE_KEY])

    @rpc
    def write(self, key: str) -> None:
        self.store.db.writes.insert_one({"_id": key})


def _parcel(parcel_id: str, **extra) -> dict:
    return make_event("warehouse", "parcel.sent", {"parcel_id": parcel_id, **extra}, None)


def test_a_fresh_event_is_published_in_the_next_pass_even_behind_sixty_backing_off(service_config):
    _, db = connect(service_config, "warehouse")
    session = StoreSession(db, "warehouse")
    for n in range(60):  # each failed before (broker outage, or never routable) and waits out its backoff
        entry = outbox_entry(_parcel(f"old-{n}"))
        entry.update(claimed_until=utcnow() + timedelta(minutes=5), attempts=3, last_error="broker down")
        db.parcels.insert_one({"_id": f"old-{n}", "outbox": [entry]})
    session.insert_with_events("parcels", {"_id": "fresh"}, [_parcel("fresh")])

    published = []
    relay = OutboxRelay(db, ["parcels"], published.append, batch_size=50)
    report = relay.relay_once()

    assert [event["payload"]["parcel_id"] for event in published] == ["fresh"]
    assert (report.published, report.deferred) == (1, 0)  # the sixty were not even read
    plan = relay.claimable(db.parcels).explain()
    assert index_used(plan) == OUTBOX_INDEX, plan


def index_used(plan: dict) -> str | None:
    """The index a find's plan uses: MongoDB's winning plan (IXSCAN) or, with the development store, its hint."""
    if "queryPlanner" in plan:
        stage = plan["queryPlanner"]["winningPlan"]
        while stage:
            if stage.get("stage") == "IXSCAN":
                return stage["indexName"]
            stage = stage.get("inputStage")
        return None
    return plan.get("hinted_index")


def test_an_event_no_queue_takes_for_too_long_is_dead_lettered_with_its_reason_then_replayed(
        container_factory, service_config, mongo_client, database_prefix):
    config = {**service_config, "OUTBOX_GIVE_UP_HOURS": 1 / 3600}  # one second, for the test
    warehouse = container_factory(Warehouse, config)
    warehouse.start()
    with entrypoint_hook(warehouse, "send") as send:
        send("unwanted")

    dead_letters = DeadLetterQueue(service_config["AMQP_URI"])
    letter = wait_for(lambda: next(iter(dead_letters.list()), None), timeout=20)
    assert (letter.event_type, letter.handler, letter.service) == ("parcel.sent", "outbox-relay", "warehouse")
    assert "no queue bound" in letter.error and letter.original_exchange == "warehouse.events"
    assert mongo_client[database_prefix + "warehouse"].parcels.find_one({"_id": "unwanted"})["outbox"] == []

    container_factory(Shop, service_config).start()  # somebody listens now: the operator replays it
    assert dead_letters.replay(letter.dead_letter_id).event_id == letter.event_id
    assert wait_for(lambda: mongo_client[database_prefix + "shop"].receipts.find_one({"_id": "unwanted"}))


def test_a_consumer_deployed_after_its_producer_receives_what_was_published_before_its_first_start(
        container_factory, service_config, mongo_client, database_prefix, tmp_path):
    description = tmp_path / "topology.yml"
    description.write_text("handlers:\n"
                           "  - {source: warehouse, event: parcel.sent, service: shop, method: receive}\n"
                           "  - {source: warehouse, event: parcel.sent, service: audit, method: record}\n")
    config = {**service_config, "TOPOLOGY_FILE": str(description)}
    container_factory(Shop, config).start()           # one consumer is enough to satisfy ``mandatory``...
    warehouse = container_factory(Warehouse, config)  # ...but the producer declares every described queue
    warehouse.start()
    with entrypoint_hook(warehouse, "send") as send:
        send("early")
    assert wait_for(lambda: mongo_client[database_prefix + "shop"].receipts.find_one({"_id": "early"}))

    container_factory(Audit, config).start()          # deployed later: the event waited in its queue
    assert wait_for(lambda: mongo_client[database_prefix + "audit"].seen.find_one({"_id": "early"}))


def test_a_deleted_retry_queue_is_declared_again_and_the_poison_event_reaches_the_dead_letters(
        container_factory, service_config):
    container_factory(Shop, service_config).start()
    vhost = service_config["vhost"]
    first_retry = Topology(service_config).retry_queues(Handler("warehouse", "parcel.sent", "shop", "receive"))[0]
    api, auth = MANAGEMENT
    deleted = requests.delete(f"{api}/queues/{vhost}/{first_retry.name}", auth=auth, timeout=10)
    assert deleted.status_code == 204, deleted.text

    poison = _parcel("poison", poison=True)
    event_dispatcher(service_config)("warehouse", "parcel.sent", poison)

    letters = wait_for(lambda: DeadLetterQueue(service_config["AMQP_URI"]).list(), timeout=20)
    assert [letter.event_id for letter in letters] == [poison["event_id"]]
    assert requests.get(f"{api}/queues/{vhost}/{first_retry.name}", auth=auth, timeout=10).ok  # declared again


def test_an_event_arriving_40_seconds_before_the_fact_it_needs_waits_and_is_not_dead_lettered(
        container_factory, service_config, mongo_client, database_prefix):
    # The foundation's schedule (1, 5, 30 s) gave up after 36 s; any schedule outlasting the wait will do.
    config = {**service_config, "EVENT_RETRY_DELAYS": [5, 10, 30], "EVENT_RETRY_JITTER": 0}
    container_factory(Kitchen, config).start()
    event_dispatcher(service_config)("warehouse", "parcel.sent", _parcel("order-1"))

    time.sleep(40)
    kitchen = mongo_client[database_prefix + "kitchen"]
    assert kitchen.meals.count_documents({}) == 0
    kitchen.recipes.insert_one({"_id": "soup"})  # the fact it needed arrives, 40 s late

    assert wait_for(lambda: kitchen.meals.find_one({"_id": "order-1"}), timeout=30)
    assert DeadLetterQueue(service_config["AMQP_URI"]).list() == []


def test_a_request_picked_up_after_its_callers_deadline_is_dropped_not_executed(
        container_factory, service_config, mongo_client, database_prefix):
    container_factory(Echo, service_config).start()
    gone = {DEADLINE_KEY: time.time() - 1}  # the caller stopped waiting a second ago
    with ServiceRpcProxy("echo", service_config, context_data=gone, timeout=10) as echo:
        try:
            echo.write("too-late")
        except RemoteError as dropped:
            assert dropped.exc_type == "DeadlinePassed"
        else:
            raise AssertionError("a request past its deadline was executed")
    with ServiceRpcProxy("echo", service_config, context_data={DEADLINE_KEY: time.time() + 30}, timeout=10) as echo:
        echo.write("in-time")
    writes = mongo_client[database_prefix + "echo"].writes
    assert [w["_id"] for w in writes.find()] == ["in-time"]


def test_a_chained_call_gets_the_callers_remaining_time_not_a_fresh_timeout(runner_factory, service_config):
    runner = runner_factory(service_config, Clock, Echo)
    runner.start()
    callers_deadline = time.time() + 3  # much sooner than Clock's own 30 s timeout for Echo
    with ServiceRpcProxy("clock", service_config, context_data={DEADLINE_KEY: callers_deadline}) as clock:
        assert clock.deadline_seen_downstream() == callers_deadline
    assert get_container(runner, Clock) is not None


def test_every_durable_queue_is_a_quorum_queue_with_a_delivery_limit(container_factory, service_config):
    container_factory(Shop, service_config).start()
    container_factory(Warehouse, service_config).start()
    api, auth = MANAGEMENT
    queues = {q["name"]: q for q in requests.get(f"{api}/queues/{service_config['vhost']}", auth=auth,
                                                timeout=10).json()}
    durable = {name: q for name, q in queues.items() if q["durable"]}
    assert {"evt-warehouse-parcel.sent--shop.receive", "infusion.dead-letters", "rpc-warehouse"} <= set(durable)
    assert {name: q["type"] for name, q in durable.items()} == {name: "quorum" for name in durable}
    handler_queue = durable["evt-warehouse-parcel.sent--shop.receive"]["arguments"]
    assert handler_queue["x-delivery-limit"] == 10
    assert handler_queue["x-dead-letter-routing-key"] == "infusion.dead-letters"


def test_the_operator_replays_every_dead_letter_matching_filters_and_the_rest_keep_their_order(
        container_factory, service_config, mongo_client, database_prefix):
    import os
    import subprocess
    import sys

    container_factory(Shop, service_config).start()
    poisons = [_parcel(f"poison-{n}", poison=True) for n in range(3)]
    unreadable = _parcel("unreadable")
    unreadable["version"] = 9
    for event in (*poisons, unreadable):
        event_dispatcher(service_config)("warehouse", "parcel.sent", event)
    dead_letters = DeadLetterQueue(service_config["AMQP_URI"])
    wait_for(lambda: len(dead_letters.list()) == 4, timeout=20)

    env = {**os.environ, "AMQP_URI": service_config["AMQP_URI"]}
    replay = subprocess.run([sys.executable, "-m", "infusion.cli", "dlq", "replay", "--all",
                             "--handler", "shop.receive", "--error", "CANNOT SHELVE"], env=env, capture_output=True,
                            text=True)

    assert replay.returncode == 0, replay.stderr
    assert "3 dead letter(s) replayed" in replay.stdout
    # the three poisons went back to their handler (and, still poisonous, came back after their retries)
    wait_for(lambda: len(dead_letters.list()) == 4, timeout=20)
    after = [letter.event_id for letter in dead_letters.list()]
    assert after[0] == unreadable["event_id"]  # not matched: left where it was, ahead of the replayed ones
    assert set(after[1:]) == {poison["event_id"] for poison in poisons}
    assert all(letter.attempts == 3 for letter in dead_letters.list()[1:])  # a fresh round: first try + 2 retries
