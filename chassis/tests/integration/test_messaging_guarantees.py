"""The chassis' promises, on the real RabbitMQ and the real store:

- an event written with a state change is published even if the relay dies between write and publish;
- a duplicate delivery is absorbed by an idempotent handler;
- a failing event is retried with backoff, then dead-lettered, without blocking the events behind it;
- an operator can list and replay dead letters;
- an event published before its consumer runs is kept; one with no queue yet stays in the outbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from kombu import Connection
from marshmallow import Schema, fields
from nameko.events import get_event_exchange
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook
from nameko.testing.utils import get_container

from chassis.clock import utcnow
from chassis.dlq import DeadLetterQueue
from chassis.events import Event, event_schema, make_event
from chassis.outbox import OutboxRelay
from chassis.rpc import rpc
from chassis.service import ServiceBase
from chassis.store import Store, StoreSession, connect
from chassis.subscriber import subscribe
from chassis.testing import wait_for


@event_schema("parcel.sent", version=1)
class ParcelSent(Schema):
    parcel_id = fields.String(required=True)
    poison = fields.Boolean(load_default=False)


class Warehouse(ServiceBase):
    """A producer: every parcel it sends is a document with a ``parcel.sent`` event in its outbox."""

    name = "warehouse"
    store = Store("warehouse", outbox=("parcels",))

    @rpc
    def send(self, parcel_id: str, poison: bool = False) -> None:
        event = self.store.event("parcel.sent", {"parcel_id": parcel_id, "poison": poison})
        self.store.insert_with_events("parcels", {"_id": parcel_id}, [event])


FAILURES_ALLOWED = {"count": 0}


class Shop(ServiceBase):
    """A consumer that counts receipts idempotently, and fails on poison parcels."""

    name = "shop"
    store = Store("shop")

    @subscribe("warehouse", "parcel.sent", ParcelSent)
    def receive(self, event: Event) -> None:
        if event.payload["poison"] and not FAILURES_ALLOWED.get("healed"):
            FAILURES_ALLOWED["count"] += 1
            raise RuntimeError("cannot shelve this parcel")
        self.store.db.shelf.update_one({"_id": "counter"}, {"$setOnInsert": {"received": 0}}, upsert=True)
        self.store.update_once("shelf", {"_id": "counter"}, {"$inc": {"received": 1}}, event.event_id)
        self.store.insert_once("receipts", {"_id": event.payload["parcel_id"], "event_id": event.event_id})


@pytest.fixture(autouse=True)
def reset_failures():
    FAILURES_ALLOWED.clear()
    FAILURES_ALLOWED["count"] = 0


def _shop_db(mongo_client, database_prefix):
    return mongo_client[database_prefix + "shop"]


def _dispatch(service_config, event):
    event_dispatcher(service_config)("warehouse", event["type"], event)


def test_an_event_reaches_its_consumer_through_the_outbox(runner_factory, service_config, mongo_client,
                                                          database_prefix):
    runner = runner_factory(service_config, Warehouse, Shop)
    runner.start()
    with entrypoint_hook(get_container(runner, Warehouse), "send") as send:
        send("p-1")
    shop = _shop_db(mongo_client, database_prefix)
    assert wait_for(lambda: shop.receipts.find_one({"_id": "p-1"}))
    warehouse = mongo_client[database_prefix + "warehouse"]
    assert wait_for(lambda: warehouse.parcels.find_one({"_id": "p-1"})["outbox"] == [])


def test_an_event_survives_a_relay_killed_between_write_and_publish(container_factory, service_config,
                                                                    mongo_client, database_prefix):
    shop = container_factory(Shop, service_config)
    shop.start()
    _, warehouse_db = connect(service_config, "warehouse")
    StoreSession(warehouse_db, "warehouse").insert_with_events(
        "parcels", {"_id": "p-2"}, [make_event("warehouse", "parcel.sent", {"parcel_id": "p-2"}, "c-2")])

    class RelayKilled(BaseException):
        pass

    def die_while_publishing(event):
        raise RelayKilled()

    dying = OutboxRelay(warehouse_db, ["parcels"], die_while_publishing, lease=timedelta(seconds=30))
    with pytest.raises(RelayKilled):
        dying.relay_once()
    claimed = warehouse_db.parcels.find_one({"_id": "p-2"})["outbox"][0]
    assert claimed["claimed_by"] == dying.relay_id

    # Another relay cannot take the event while the dead relay's lease runs...
    published = []
    impatient = OutboxRelay(warehouse_db, ["parcels"], published.append)
    assert impatient.relay_once().published == 0 and published == []

    # ...and takes it once the lease has expired: the event is published, nothing is lost.
    producer = Warehouse  # the real service publishes it, with publisher confirms
    later = OutboxRelay(warehouse_db, ["parcels"], _real_publisher(service_config),
                        clock=lambda: utcnow() + timedelta(seconds=31))
    assert later.relay_once().published == 1
    assert producer.name == "warehouse"
    assert wait_for(lambda: _shop_db(mongo_client, database_prefix).receipts.find_one({"_id": "p-2"}))
    assert warehouse_db.parcels.find_one({"_id": "p-2"})["outbox"] == []


def _real_publisher(config):
    exchange = get_event_exchange("warehouse", config)

    def publish(event):
        with Connection(config["AMQP_URI"], transport_options={"confirm_publish": True}) as connection:
            connection.Producer().publish(event, exchange=exchange, routing_key=event["type"], declare=[exchange],
                                          serializer="json", delivery_mode=2)

    return publish


def test_events_written_while_the_producer_was_down_are_published_when_it_starts(
        container_factory, service_config, mongo_client, database_prefix):
    shop = container_factory(Shop, service_config)
    shop.start()
    _, warehouse_db = connect(service_config, "warehouse")
    StoreSession(warehouse_db, "warehouse").insert_with_events(
        "parcels", {"_id": "p-3"}, [make_event("warehouse", "parcel.sent", {"parcel_id": "p-3"}, None)])
    container_factory(Warehouse, service_config).start()
    assert wait_for(lambda: _shop_db(mongo_client, database_prefix).receipts.find_one({"_id": "p-3"}))


def test_an_event_nobody_listens_to_yet_stays_in_the_outbox_until_a_queue_is_bound(
        container_factory, service_config, mongo_client, database_prefix):
    _, warehouse_db = connect(service_config, "warehouse")
    StoreSession(warehouse_db, "warehouse").insert_with_events(
        "parcels", {"_id": "p-4"}, [make_event("warehouse", "parcel.sent", {"parcel_id": "p-4"}, None)])
    warehouse = container_factory(Warehouse, service_config)
    warehouse.start()
    entry = wait_for(lambda: (warehouse_db.parcels.find_one({"_id": "p-4"})["outbox"] or [None])[0]
                     if warehouse_db.parcels.find_one({"_id": "p-4"})["outbox"][0].get("last_error") else None)
    assert entry["last_error"] == "no queue bound"

    # The consumer's queue appears; the relay's backoff ends; the event is delivered.
    container_factory(Shop, service_config).start()
    warehouse_db.parcels.update_one({"_id": "p-4"}, {"$set": {"outbox.0.claimed_until": utcnow()}})
    assert wait_for(lambda: _shop_db(mongo_client, database_prefix).receipts.find_one({"_id": "p-4"}))


def test_a_duplicate_delivery_is_absorbed(container_factory, service_config, mongo_client, database_prefix):
    container_factory(Shop, service_config).start()
    event = make_event("warehouse", "parcel.sent", {"parcel_id": "p-5"}, None)
    _dispatch(service_config, event)
    _dispatch(service_config, event)
    _dispatch(service_config, make_event("warehouse", "parcel.sent", {"parcel_id": "p-6"}, None))
    shop = _shop_db(mongo_client, database_prefix)
    wait_for(lambda: shop.receipts.count_documents({}) == 2)
    wait_for(lambda: shop.shelf.find_one({"_id": "counter", "received": 2}))
    counter = shop.shelf.find_one({"_id": "counter"})
    assert counter["received"] == 2  # p-5 once, p-6 once
    assert sorted(counter["processed_events"]).count(event["event_id"]) == 1


def test_a_poison_event_is_retried_then_dead_lettered_without_blocking_others(
        container_factory, service_config, mongo_client, database_prefix):
    container_factory(Shop, service_config).start()
    poison = make_event("warehouse", "parcel.sent", {"parcel_id": "bad", "poison": True}, "corr-bad")
    _dispatch(service_config, poison)
    _dispatch(service_config, make_event("warehouse", "parcel.sent", {"parcel_id": "good"}, None))

    shop = _shop_db(mongo_client, database_prefix)
    assert wait_for(lambda: shop.receipts.find_one({"_id": "good"}))
    dead_letters = DeadLetterQueue(service_config["AMQP_URI"])
    letters = wait_for(lambda: dead_letters.list())
    assert len(letters) == 1
    letter = letters[0]
    retries = len(service_config["EVENT_RETRY_DELAYS"])
    assert FAILURES_ALLOWED["count"] == retries + 1  # first try, then one per retry delay
    assert (letter.event_id, letter.attempts, letter.service, letter.handler) == (
        poison["event_id"], retries + 1, "shop", "receive")
    assert "cannot shelve this parcel" in letter.error
    assert letter.original_queue == "evt-warehouse-parcel.sent--shop.receive"
    assert dead_letters.list() == letters  # listing leaves the queue as it was

    # The operator fixes the cause and replays: the event is handled and leaves the queue.
    FAILURES_ALLOWED["healed"] = True
    assert dead_letters.replay(letter.dead_letter_id).event_id == poison["event_id"]
    assert wait_for(lambda: shop.receipts.find_one({"_id": "bad"}))
    assert dead_letters.list() == []
    assert dead_letters.replay(letter.dead_letter_id) is None


def test_an_event_that_can_never_be_read_goes_straight_to_the_dead_letter_queue(
        container_factory, service_config):
    container_factory(Shop, service_config).start()
    malformed = make_event("warehouse", "parcel.sent", {"parcel_id": "x"}, None)
    malformed["version"] = 9
    _dispatch(service_config, malformed)
    letters = wait_for(lambda: DeadLetterQueue(service_config["AMQP_URI"]).list())
    assert letters[0].attempts == 1
    assert "not a version this handler reads" in letters[0].error


def test_the_operator_command_line_lists_and_replays_dead_letters(container_factory, service_config,
                                                                   mongo_client, database_prefix):
    container_factory(Shop, service_config).start()
    poison = make_event("warehouse", "parcel.sent", {"parcel_id": "cli", "poison": True}, None)
    _dispatch(service_config, poison)
    wait_for(lambda: DeadLetterQueue(service_config["AMQP_URI"]).list())
    env = {**os.environ, "AMQP_URI": service_config["AMQP_URI"]}
    infusion = [sys.executable, "-m", "infusion.cli"]
    listing = subprocess.run([*infusion, "dlq", "list"], env=env, capture_output=True, text=True, check=True)
    assert poison["event_id"] in listing.stdout and "shop.receive" in listing.stdout
    dead_letter_id = listing.stdout.split()[0]
    FAILURES_ALLOWED["healed"] = True
    replay = subprocess.run([*infusion, "dlq", "replay", dead_letter_id], env=env, capture_output=True, text=True)
    assert replay.returncode == 0, replay.stderr
    assert wait_for(lambda: _shop_db(mongo_client, database_prefix).receipts.find_one({"_id": "cli"}))
    missing = subprocess.run([*infusion, "dlq", "replay", "dl_nope"], env=env, capture_output=True, text=True)
    assert missing.returncode == 1 and "no dead letter" in missing.stderr


def test_a_handler_queue_exists_from_start_up_so_early_events_wait_for_it(container_factory, service_config,
                                                                          mongo_client, database_prefix):
    shop = container_factory(Shop, service_config)
    shop.start()
    shop.stop()  # the durable queue outlives the consumer
    _dispatch(service_config, make_event("warehouse", "parcel.sent", {"parcel_id": "while-down"}, None))
    container_factory(Shop, service_config).start()
    assert wait_for(lambda: _shop_db(mongo_client, database_prefix).receipts.find_one({"_id": "while-down"}))



def test_the_operator_command_line_lists_events_still_waiting_in_an_outbox(service_config, database_prefix):
    _, warehouse_db = connect(service_config, "intake")  # the command looks at the services' databases
    waiting = make_event("warehouse", "parcel.sent", {"parcel_id": "p-9"}, None)
    StoreSession(warehouse_db, "intake").insert_with_events("parcels", {"_id": "p-9"}, [waiting])
    env = {**os.environ, "MONGO_URI": service_config["MONGO_URI"], "DATABASE_PREFIX": database_prefix}
    listing = subprocess.run([sys.executable, "-m", "infusion.cli", "outbox", "list"], env=env,
                             capture_output=True, text=True, check=True)
    assert f"intake  parcels/p-9  parcel.sent  {waiting['event_id']}" in listing.stdout
