"""The service's own MongoDB database, reached through ``MONGO_URI`` only, with its outbox relay.

``Store(database="billing", indexes=..., outbox=("invoices",))`` gives each worker a ``StoreSession``:

- ``session.db``: the pymongo ``Database`` (database per service: no service opens another's);
- ``session.event(type, payload)``: a new envelope from this service, carrying the worker's correlation id;
- ``session.insert_with_events`` / ``session.update_with_events``: a state change and its events in one
  single-document write (the transactional outbox); the relay is woken when the worker ends;
- ``session.insert_once`` / ``session.update_once``: idempotent writes for event handlers.

The relay (``chassis.outbox.OutboxRelay``) runs in every process of the service, woken after each worker
that wrote events and otherwise every ``OUTBOX_POLL_SECONDS``. It publishes through the process's
``chassis.amqp.ConfirmedPublisher`` (confirmed, bounded in time), ``mandatory`` unless the topology
description says nobody handles the event, and moves an event still unpublishable after
``OUTBOX_GIVE_UP_HOURS`` to the dead-letter queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from nameko.events import get_event_exchange
from nameko.extensions import DependencyProvider
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from pymongo.results import UpdateResult

from chassis.amqp import EventPublisher
from chassis.clock import isoformat, utcnow
from chassis.events import make_event
from chassis.faults import Faults
from chassis.ids import derived_id, new_id
from chassis.logs import CORRELATION_KEY, OPERATION_KEY
from chassis.outbox import OutboxRelay, outbox_entry, outbox_index
from chassis.topology import DEFAULT_EXCHANGE, DeclaredTopology, Topology

log = logging.getLogger(__name__)

IndexBuilder = Callable[[Database], None]


def connect(config: dict[str, Any], database: str) -> tuple[MongoClient, Database]:
    """A client and the named database, as configured (``MONGO_URI``, ``DATABASE_PREFIX``)."""
    client: MongoClient = MongoClient(
        config["MONGO_URI"], tz_aware=True,
        serverSelectionTimeoutMS=int(config.get("MONGO_TIMEOUT_MS", 5000)),
        connectTimeoutMS=int(config.get("MONGO_TIMEOUT_MS", 5000)),
    )
    return client, client[f"{config.get('DATABASE_PREFIX') or ''}{database}"]  # an empty variable reads as null


class StoreSession:
    """What a worker uses to read and change its service's state."""

    def __init__(self, db: Database, producer: str, context_data: dict[str, Any] | None = None,
                 faults: Faults | None = None) -> None:
        self.db = db
        self.producer = producer
        self.context_data = context_data if context_data is not None else {}
        self.faults = faults or Faults([])
        self.wrote_events = False

    @property
    def correlation_id(self) -> str | None:
        return self.context_data.get(CORRELATION_KEY)

    @property
    def operation_key(self) -> str | None:
        """The key of the client operation this worker serves (set by the gateway on creating routes: a hash of
        the caller, the route and the ``Idempotency-Key``, else an id the gateway makes for the request): the
        same operation retried carries the same key."""
        return self.context_data.get(OPERATION_KEY)

    def creation_id(self, prefix: str, *parts: str) -> str:
        """The id of a record this operation creates: derived from the operation key when there is one, so a
        second execution of the same operation (a retry, a redelivered RPC request) finds the first record
        instead of creating another; random otherwise. ``parts`` tell apart several records of one operation."""
        if self.operation_key:
            return derived_id(prefix, self.operation_key, *parts)
        return new_id(prefix)

    def event(self, event_type: str, payload: dict[str, Any], version: int = 1) -> dict[str, Any]:
        return make_event(self.producer, event_type, payload, self.correlation_id, version=version)

    def insert_with_events(self, collection: str, document: dict[str, Any],
                           events: Iterable[dict[str, Any]]) -> None:
        """Insert a document and the events it causes, atomically (the same document)."""
        document = {**document, "outbox": [outbox_entry(e) for e in events]}
        self.db[collection].insert_one(document)
        self.wrote_events = self.wrote_events or bool(document["outbox"])
        self.faults.reached("after_insert", collection)

    def update_with_events(self, collection: str, query: dict[str, Any], update: dict[str, Any],
                           events: Iterable[dict[str, Any]]) -> UpdateResult:
        """Apply ``update`` to the one document matching ``query`` and append the events, atomically."""
        entries = [outbox_entry(e) for e in events]
        update = {**update, "$push": {**update.get("$push", {}), "outbox": {"$each": entries}}}
        result = self.db[collection].update_one(query, update)
        self.wrote_events = self.wrote_events or (bool(entries) and result.modified_count == 1)
        return result

    def insert_once(self, collection: str, document: dict[str, Any],
                    events: Iterable[dict[str, Any]] = ()) -> bool:
        """Insert a document whose ``_id`` is derived from its cause; False if it was already there."""
        try:
            self.insert_with_events(collection, document, events)
        except DuplicateKeyError:
            return False
        return True

    def update_once(self, collection: str, query: dict[str, Any], update: dict[str, Any], event_id: str,
                    events: Iterable[dict[str, Any]] = ()) -> bool:
        """Apply an update for an event unless that event was already applied to this document.

        The event id is recorded in the document by the same write, so a redelivery matches nothing.
        """
        guarded = {**query, "processed_events": {"$ne": event_id}}
        update = {**update, "$push": {**update.get("$push", {}), "processed_events": event_id}}
        return self.update_with_events(collection, guarded, update, events).modified_count == 1


class Store(DependencyProvider):
    publisher = EventPublisher()
    topology = DeclaredTopology()

    def __init__(self, database: str, indexes: IndexBuilder | None = None, outbox: Iterable[str] = ()) -> None:
        self.database = database
        self.indexes = indexes
        self.outbox_collections = tuple(outbox)
        self._wakeup = threading.Event()
        self._running = False

    def setup(self) -> None:
        config = self.container.config
        self.client, self.db = connect(config, self.database)
        self.faults = Faults.from_config(config)
        if self.indexes is not None:
            self.indexes(self.db)
        for name in self.outbox_collections:
            outbox_index(self.db[name])
        self.exchange = get_event_exchange(self.container.service_name, config)
        self.dead_letter_queue = Topology(config).dead_letter_queue()
        self.poll_seconds = float(config.get("OUTBOX_POLL_SECONDS", 1.0))
        self.relay = OutboxRelay(self.db, self.outbox_collections, self.publish_event,
                                 lease=timedelta(seconds=float(config.get("OUTBOX_LEASE_SECONDS", 30))),
                                 give_up_after=timedelta(hours=float(config.get("OUTBOX_GIVE_UP_HOURS", 6))),
                                 dead_letter=self.dead_letter_event)

    def start(self) -> None:
        if self.outbox_collections:
            self._running = True
            self.container.spawn_managed_thread(self._run_relay, identifier=f"{self.database}.outbox-relay")

    def stop(self) -> None:
        self._running = False
        self._wakeup.set()

    def kill(self) -> None:
        self.stop()

    def publish_event(self, event: dict[str, Any]) -> None:
        """Publish one event to this service's exchange: confirmed, and ``mandatory`` unless the topology
        description says no handler exists for it (then nobody is meant to receive it)."""
        mandatory = self.topology.handles(self.container.service_name, event["type"]) is not False
        self.publisher.publisher.publish(
            event, exchange=self.exchange, routing_key=event["type"], message_id=event["event_id"],
            headers={f"nameko.{CORRELATION_KEY}": event["correlation_id"] or ""}, mandatory=mandatory,
            declare=[self.exchange])

    def dead_letter_event(self, event: dict[str, Any], reason: str, attempts: int) -> None:
        """An event the relay could not publish for too long, to the dead letters (replayable to its exchange)."""
        dead_letter_id = new_id("dl")
        self.publisher.publisher.publish(
            event, exchange=DEFAULT_EXCHANGE, routing_key=self.dead_letter_queue.name, message_id=dead_letter_id,
            declare=[self.dead_letter_queue], headers={
                "x-dead-letter-id": dead_letter_id, "x-service": self.container.service_name,
                "x-handler": "outbox-relay", "x-original-exchange": self.exchange.name,
                "x-routing-key": event["type"], "x-error": reason[:2000], "x-attempts": attempts,
                "x-dead-lettered-at": isoformat(utcnow()), f"nameko.{CORRELATION_KEY}": event["correlation_id"] or ""})

    def _run_relay(self) -> None:
        while self._running:
            self._wakeup.wait(self.poll_seconds)
            self._wakeup.clear()
            if not self._running:
                break
            try:
                self.relay.relay_once()
            except Exception:
                log.exception("outbox relay pass failed; retrying")

    def get_dependency(self, worker_ctx: Any) -> StoreSession:
        return StoreSession(self.db, self.container.service_name, worker_ctx.context_data, self.faults)

    def worker_result(self, worker_ctx: Any, result: Any = None, exc_info: Any = None) -> None:
        session = worker_ctx.service and getattr(worker_ctx.service, self.attr_name, None)
        if isinstance(session, StoreSession) and session.wrote_events:
            self._wakeup.set()
