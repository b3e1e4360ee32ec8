"""Transactional outbox without transactions, and the relay that publishes it.

A state change and the events it causes are written in the same single-document write: the events go
into the document's ``outbox`` array (``outbox_entry``). Each entry's ``claimed_until`` says from when a
relay may take it: its creation time for a new event, the end of a lease while a relay holds it, the end of
a backoff after a failed publish. The relay asks only for documents whose first pending event is claimable
now, oldest first, through an index that serves exactly that query (``outbox_index``), so events backing off
never hide newer ones and a pass costs one index range per collection. It claims one event at a time with a
lease (an atomic update on the array element), publishes it with publisher confirms and then removes it from
the array. Any number of relays may run:

- a relay that dies after its claim leaves a lease that expires; another relay publishes the event;
- a relay that dies after publishing but before removing it makes the event go out twice; consumers are
  idempotent, so at-least-once is enough;
- an event that no queue is bound to yet (``mandatory`` publish returned) or that the broker does not take
  stays in the outbox and is retried with backoff; one still unpublishable ``give_up_after`` its creation is
  moved to the dead-letter queue with its reason and logged as an error: nothing accepted is dropped in
  silence.

Events of one document are published in order: the relay stops at the first one it cannot publish.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.cursor import Cursor
from pymongo.database import Database

from chassis.amqp import Unroutable
from chassis.clock import as_utc, utcnow

log = logging.getLogger(__name__)

__all__ = ["OUTBOX_INDEX", "OutboxRelay", "RelayReport", "Unroutable", "outbox_entry", "outbox_index"]

#: The index every outbox collection has: the claimable time of each document's first pending event.
OUTBOX_INDEX = "outbox_claimable"
CLAIMABLE_FIELD = "outbox.0.claimed_until"


def outbox_entry(event: dict[str, Any]) -> dict[str, Any]:
    """The outbox form of an envelope: the event plus its claim bookkeeping (claimable from its creation)."""
    return {"event": event, "event_id": event["event_id"], "claimed_until": as_utc(parse_instant(event["occurred_at"])),
            "claimed_by": None, "attempts": 0}


def outbox_index(collection: Collection) -> None:
    """Create the index the relay's query uses (every service creates it for each outbox collection)."""
    collection.create_index([(CLAIMABLE_FIELD, ASCENDING)], name=OUTBOX_INDEX)


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class RelayReport:
    published: int = 0
    deferred: int = 0
    dead_lettered: int = 0


class OutboxRelay:
    """Publishes the pending events of some collections. Plain Python: the Nameko shell runs it."""

    def __init__(self, db: Database, collections: Iterable[str], publish: Callable[[dict[str, Any]], None],
                 lease: timedelta = timedelta(seconds=30), batch_size: int = 50,
                 max_backoff: timedelta = timedelta(minutes=5), relay_id: str | None = None,
                 clock: Callable[[], datetime] = utcnow, give_up_after: timedelta = timedelta(hours=6),
                 dead_letter: Callable[[dict[str, Any], str, int], None] | None = None) -> None:
        self.db = db
        self.collections = list(collections)
        self.publish = publish
        self.lease = lease
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.relay_id = relay_id or f"{socket.gethostname()}:{id(self):x}"
        self.clock = clock
        self.give_up_after = give_up_after
        self.dead_letter = dead_letter
        self._indexed: set[str] = set()

    def claimable(self, collection: Collection) -> Cursor:
        """Documents whose first pending event may be taken now, oldest first, through the outbox index."""
        return (collection.find({CLAIMABLE_FIELD: {"$lte": self.clock()}}, {"outbox": 1})
                .sort(CLAIMABLE_FIELD, ASCENDING).hint(OUTBOX_INDEX).limit(self.batch_size))

    def relay_once(self) -> RelayReport:
        report = RelayReport()
        for name in self.collections:
            collection = self.db[name]
            if name not in self._indexed:
                outbox_index(collection)  # once per relay: the query below names this index
                self._indexed.add(name)
            for document in list(self.claimable(collection)):
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
            except Exception as exc:  # no queue bound, broker down or blocked: try again later, or give up
                reason = "no queue bound" if isinstance(exc, Unroutable) else str(exc) or type(exc).__name__
                if not isinstance(exc, Unroutable):
                    log.warning("outbox publish failed for %s: %s", entry["event_id"], reason)
                if self._too_old(entry) and self._give_up(collection, document["_id"], entry, reason):
                    report.dead_lettered += 1
                    continue
                self._back_off(collection, document["_id"], entry, reason)
                report.deferred += 1
                return
            self._remove(collection, document["_id"], entry)
            report.published += 1

    def _remove(self, collection: Collection, document_id: Any, entry: dict[str, Any]) -> None:
        collection.update_one({"_id": document_id}, {"$pull": {"outbox": {"event_id": entry["event_id"]}}})

    def _too_old(self, entry: dict[str, Any]) -> bool:
        return self.clock() - parse_instant(entry["event"]["occurred_at"]) > self.give_up_after

    def _give_up(self, collection: Collection, document_id: Any, entry: dict[str, Any], reason: str) -> bool:
        """Move an event that stayed unpublishable too long to the dead letters; False if even that failed."""
        if self.dead_letter is None:
            return False
        attempts = entry.get("attempts", 0) + 1
        hours = self.give_up_after.total_seconds() / 3600
        try:
            self.dead_letter(entry["event"], f"unpublishable for over {hours:g} h: {reason}", attempts)
        except Exception as exc:
            log.warning("could not dead-letter unpublishable event %s either: %s", entry["event_id"], exc)
            return False
        log.error("gave up publishing event %s (%s) after %d attempts: %s", entry["event_id"],
                  entry["event"]["type"], attempts, reason, extra={"event_id": entry["event_id"]})
        self._remove(collection, document_id, entry)
        return True

    def _claim(self, collection: Collection, document_id: Any, event_id: str) -> bool:
        now = self.clock()
        claimed = collection.update_one(
            {"_id": document_id, "outbox": {"$elemMatch": {"event_id": event_id, "claimed_until": {"$lte": now}}}},
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
