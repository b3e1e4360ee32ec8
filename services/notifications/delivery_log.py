"""The delivery log and the reminder book, in the store (plain pymongo, no Nameko).

Every message is first *recorded*: one document per (cause, message kind, channel, recipient), its id derived
from those, so the same event delivered twice records nothing twice. A sender (a timer in every process)
then claims a due record atomically (``pending -> sending`` with a lease: never read-then-write), sends it
and records the outcome: ``sent`` with the provider's message id, ``pending`` again after a backoff, or
``failed`` with the last error. A claim whose process died expires and another sender takes it. A failed
record never holds up others: each is claimed on its own.

Reminders are planned the same way (``planned -> firing`` with a lease): firing one records its messages
(ids derived from the reminder: once, expiring at its moment plus its tolerance) and marks it ``sent``; one
whose moment passed by more than its tolerance is marked ``skipped``; a cancelled or moved visit's are
``dropped``. A message past its expiry when a sender claims it is marked ``skipped`` with the reason, never sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from chassis.clock import utcnow
from chassis.ids import derived_id


def delivery_id(cause: str, kind: str, channel: str, to: str) -> str:
    return derived_id("msg", cause, kind, channel, to)


def record(db: Database, document: dict[str, Any]) -> bool:
    """Record a message to send; False if this (cause, kind, channel, recipient) was recorded already."""
    now = utcnow()
    try:
        db.messages.insert_one({"status": "pending", "attempts": 0, "provider_message_id": None,
                                "last_error": None, "sent_at": None, "lease_until": None, "created_at": now,
                                "not_before": now, "expires_at": None, **document})
    except DuplicateKeyError:
        return False
    return True


def claim_due_message(db: Database, channels: Iterable[str], lease: timedelta) -> dict[str, Any] | None:
    """Atomically take one message that is due on a channel this process can send (or whose sender's lease
    ran out), counting the attempt; None when there is none."""
    now = utcnow()
    return db.messages.find_one_and_update(
        {"channel": {"$in": list(channels)},
         "$or": [{"status": "pending", "not_before": {"$lte": now}},
                 {"status": "sending", "lease_until": {"$lt": now}}]},
        {"$set": {"status": "sending", "lease_until": now + lease}, "$inc": {"attempts": 1}},
        sort=[("not_before", ASCENDING)], return_document=ReturnDocument.AFTER)


def _settle(db: Database, message: dict[str, Any], changes: dict[str, Any]) -> bool:
    """Record the outcome of this claim (only if no other sender has taken the message since)."""
    claim = {"_id": message["_id"], "status": "sending", "attempts": message["attempts"]}
    return db.messages.update_one(claim, {"$set": {"lease_until": None, **changes}}).modified_count == 1


def mark_sent(db: Database, message: dict[str, Any], provider_message_id: str) -> bool:
    return _settle(db, message, {"status": "sent", "provider_message_id": provider_message_id,
                                 "sent_at": utcnow(), "last_error": None})


def mark_retry(db: Database, message: dict[str, Any], error: str, at: datetime) -> bool:
    return _settle(db, message, {"status": "pending", "last_error": error, "not_before": at})


def mark_failed(db: Database, message: dict[str, Any], error: str, status: str = "failed") -> bool:
    """``failed`` (every attempt used, or a permanent refusal) or ``skipped`` (too late to be of use)."""
    return _settle(db, message, {"status": status, "last_error": error})


def failed_messages(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    return list(db.messages.find({"status": "failed"}).sort([("created_at", ASCENDING)]).limit(limit))


# --- reminders -----------------------------------------------------------------------------------------

def reminder_id(appointment_id: str, kind: str, start_at: datetime | None) -> str:
    return derived_id("rem", appointment_id, kind, start_at.isoformat() if start_at else "")


def plan_reminder(db: Database, document: dict[str, Any]) -> bool:
    try:
        db.reminders.insert_one({"status": "planned", "lease_until": None, "outcome": None,
                                 "created_at": utcnow(), **document})
    except DuplicateKeyError:
        return False
    return True


def drop_reminders(db: Database, appointment_id: str, reason: str, keep_start_at: datetime | None = None) -> int:
    """Drop an appointment's reminders still to fire (all, or those planned for another start time)."""
    query: dict[str, Any] = {"appointment_id": appointment_id, "status": "planned", "start_at": {"$ne": None}}
    if keep_start_at is not None:
        query["start_at"] = {"$nin": [None, keep_start_at]}
    return db.reminders.update_many(query, {"$set": {"status": "dropped", "outcome": reason}}).modified_count


def claim_due_reminder(db: Database, lease: timedelta) -> dict[str, Any] | None:
    now = utcnow()
    return db.reminders.find_one_and_update(
        {"$or": [{"status": "planned", "due_at": {"$lte": now}},
                 {"status": "firing", "lease_until": {"$lt": now}}]},
        {"$set": {"status": "firing", "lease_until": now + lease}},
        sort=[("due_at", ASCENDING)], return_document=ReturnDocument.AFTER)


def settle_reminder(db: Database, reminder: dict[str, Any], status: str, outcome: str) -> bool:
    claim = {"_id": reminder["_id"], "status": "firing", "lease_until": reminder["lease_until"]}
    changes = {"status": status, "outcome": outcome, "lease_until": None, "fired_at": utcnow()}
    return db.reminders.update_one(claim, {"$set": changes}).modified_count == 1


def release_reminder(db: Database, reminder: dict[str, Any], retry_at: datetime, outcome: str) -> None:
    """Put a reminder back (its patient's contact has not arrived yet): it is tried again at ``retry_at``."""
    claim = {"_id": reminder["_id"], "status": "firing", "lease_until": reminder["lease_until"]}
    db.reminders.update_one(claim, {"$set": {"status": "firing", "lease_until": retry_at, "outcome": outcome}})
