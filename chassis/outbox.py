"""Transactional outbox without transactions, and the relay that publishes it.

A state change and the events it causes are written in the same single-document write: the events go
into the document's ``outbox`` array (``outbox_entry``). The relay finds documents with pending events,
claims one event at a time with a lease (an atomic update on the array element), publishes it with
publisher confirms and then removes it from the array. Any number of relays may run:

- a relay that dies after its claim leaves a lease that expires; another relay publishes the event;
- a relay that dies after publishing but before removing it makes the event go out twice; consumers are
  idempotent, so at-least-once is enough;
- an event that no queue is bound to yet (``mandatory`` publish returned) stays in the outbox and is
  retried with backoff: nothing accepted is ever dropped.

Events of one document are published in order: the relay stops at the first one it cannot publish.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from chassis.clock import utcnow

log = logging.getLogger(__name__)

NEVER_CLAIMED = datetime(1970, 1, 1, tzinfo=UTC)


class Unroutable(Exception):
    """The broker accepted the publish but no queue was bound to receive it."""


def outbox_entry(event: dict[str, Any]) -> dict[str, Any]:
    """The outbox form of an envelope: the event plus its claim bookkeeping."""
    return {"event": event, "event_id": event["event_id"], "claimed_until": NEVER_CLAIMED,
            "claimed_by": None, "attempts": 0}


@dataclass
class RelayReport:
    published: int = 0
    deferred: int = 0


class OutboxRelay:
    """Publishes the pending events of some collections. Plain Python: the Nameko shell runs it."""

    def __init__(self, db: Database, collections: Iterable[str], publish: Callable[[dict[str, Any]], None],
                 lease: timedelta = timedelta(seconds=30), batch_size: int = 50,
                 max_backoff: timedelta = timedelta(minutes=5), relay_id: str | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.collections = list(collections)
        self.publish = publish
        self.lease = lease
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.relay_id = relay_id or f"{socket.gethostname()}:{id(self):x}"
        self.clock = clock

    def relay_once(self) -> RelayReport:
        report = RelayReport()
        for name in self.collections:
            collection = self.db[name]
            pending = collection.find({"outbox.0": {"$exists": True}}, {"outbox": 1}).limit(self.batch_size)
            for document in list(pending):
                self._relay_document(collection, document, report)
        return report

    def pending(self) -> list[dict[str, Any]]:
        """Every event still waiting in the outboxes, for operators (``infusion outbox list``)."""
        waiting = []
        for name in self.collections:
            for document in self.db[name].find({"outbox.0": {"$exists": True}}, {"outbox": 1}):
                for entry in document["outbox"]:
                    waiting.append({"collection": name, "document_id": document["_id"], **entry})
        return waiting

    def _relay_document(self, collection: Collection, document: dict[str, Any], report: RelayReport) -> None:
        for entry in document["outbox"]:
            if not self._claim(collection, document["_id"], entry["event_id"]):
                report.deferred += 1
                return  # another relay has it, or it is backing off: keep this document's order
            try:
                self.publish(entry["event"])
            except Unroutable:
                self._back_off(collection, document["_id"], entry, "no queue bound")
                report.deferred += 1
                return
            except Exception as exc:  # broker down, connection lost: try again later
                log.warning("outbox publish failed for %s: %s", entry["event_id"], exc)
                self._back_off(collection, document["_id"], entry, str(exc))
                report.deferred += 1
                return
            collection.update_one({"_id": document["_id"]}, {"$pull": {"outbox": {"event_id": entry["event_id"]}}})
            report.published += 1

    def _claim(self, collection: Collection, document_id: Any, event_id: str) -> bool:
        now = self.clock()
        claimed = collection.update_one(
            {"_id": document_id, "outbox": {"$elemMatch": {"event_id": event_id, "claimed_until": {"$lt": now}}}},
            {"$set": {"outbox.$.claimed_until": now + self.lease, "outbox.$.claimed_by": self.relay_id},
             "$inc": {"outbox.$.attempts": 1}},
        )
        return claimed.modified_count == 1

    def _back_off(self, collection: Collection, document_id: Any, entry: dict[str, Any], reason: str) -> None:
        attempts = entry.get("attempts", 0) + 1
        delay = min(timedelta(seconds=2 ** min(attempts, 12)), self.max_backoff)
        collection.update_one(
            {"_id": document_id, "outbox": {"$elemMatch": {"event_id": entry["event_id"],
                                                           "claimed_by": self.relay_id}}},
            {"$set": {"outbox.$.claimed_until": self.clock() + delay, "outbox.$.last_error": reason}},
        )
