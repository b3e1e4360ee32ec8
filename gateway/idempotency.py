"""``Idempotency-Key`` handling for POSTs that create records or move money.

A key is scoped to the caller (subject) and the route. The first request with a key
claims it by inserting a document whose ``_id`` is the hash of (subject, route, key);
MongoDB's unique ``_id`` makes that claim atomic across gateway processes. Later
requests with the same key replay the stored response, are refused while the first
is still running, or are refused when they carry a different body. A claim whose
lease ran out is taken over with one conditional update.

A claim is never released: a request that failed with a 5xx (a timeout above all) may have
changed something before it failed, so its key stays pending until its lease runs out, and the
retry that takes it over runs with the same operation key (``Proceed.operation_key``, derived
from the record key). The services derive the ids of what they create from that key, so the
second execution finds the first one's record instead of creating another.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from chassis.clock import utc
from gateway.problems import ProblemError

COLLECTION = "idempotency_keys"
MAX_KEY_LENGTH = 255
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
_CLAIM_ATTEMPTS = 5


class InvalidIdempotencyKey(ProblemError, ValueError):
    """The Idempotency-Key header is empty, too long or not visible ASCII (HTTP 400)."""

    status = 400
    code = "invalid_idempotency_key"
    title = "Invalid Idempotency-Key"


@dataclass(frozen=True)
class Proceed:
    """This request owns the key: run it with ``operation_key``, then ``complete`` the record if it answered."""

    record_id: str

    @property
    def operation_key(self) -> str:
        """The same for every claim of one (caller, route, key): what a retry's execution is recognised by."""
        return _parse_record_id(self.record_id)[0]


@dataclass(frozen=True)
class Replay:
    """The same request already completed: answer with its stored response."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Mismatch:
    """The key was used with a different body (HTTP 422)."""


@dataclass(frozen=True)
class InProgress:
    """A request with this key is still running (HTTP 409 with Retry-After)."""

    retry_after_seconds: int


Outcome = Proceed | Replay | Mismatch | InProgress


def validate_key(key: str | None) -> str:
    """Return ``key`` if it is 1-255 visible ASCII characters, else raise InvalidIdempotencyKey."""
    if not key or len(key) > MAX_KEY_LENGTH or not all("!" <= char <= "~" for char in key):
        raise InvalidIdempotencyKey(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters without spaces."
        )
    return key


class IdempotencyStore:
    """Claims, completes and replays idempotency keys in the gateway's database."""

    def __init__(self, db: Database, lease_seconds: int = 30, retention_hours: int = 24) -> None:
        if lease_seconds < 1 or retention_hours < 1:
            raise ValueError("lease_seconds and retention_hours must be positive")
        self._records = db[COLLECTION]
        self._lease = timedelta(seconds=lease_seconds)
        self._retention = timedelta(hours=retention_hours)
        self._records.create_index("expires_at", expireAfterSeconds=0)

    def begin(
        self, key: str, subject: str, route: str, body_bytes: bytes | str, now: datetime | None = None
    ) -> Outcome:
        """Claim ``key`` for this request, or say how to answer a repeat of it."""
        record_key = _record_key(validate_key(key), subject, route)
        body_sha256 = hashlib.sha256(_as_bytes(body_bytes)).hexdigest()
        now = utc(now)
        for _ in range(_CLAIM_ATTEMPTS):
            claim = secrets.token_hex(16)
            try:
                self._records.insert_one(self._claim_document(record_key, claim, body_sha256, now))
                return Proceed(_record_id(record_key, claim))
            except DuplicateKeyError:
                pass
            existing = self._records.find_one({"_id": record_key})
            if existing is None:
                continue  # purged between our insert and our read: try again
            if existing["expires_at"] <= now:
                if self._take_over(existing, claim, body_sha256, now, {"expires_at": {"$lte": now}}):
                    return Proceed(_record_id(record_key, claim))
                continue
            if existing["body_sha256"] != body_sha256:
                return Mismatch()
            if existing["state"] == COMPLETED:
                response = existing["response"]
                return Replay(response["status"], dict(response["headers"]), bytes(response["body"]))
            if existing["lease_until"] > now:
                return InProgress(_seconds_until(existing["lease_until"], now))
            stale = {"state": IN_PROGRESS, "claim": existing["claim"], "lease_until": {"$lte": now}}
            if self._take_over(existing, claim, body_sha256, now, stale):
                return Proceed(_record_id(record_key, claim))
        return InProgress(1)

    def complete(
        self,
        record_id: str,
        status: int,
        headers: dict[str, str],
        body: bytes | str,
        now: datetime | None = None,
    ) -> bool:
        """Store the response of a claimed request; False if the claim was lost (lease taken over)."""
        record_key, claim = _parse_record_id(record_id)
        response = {"status": int(status), "headers": dict(headers), "body": _as_bytes(body)}
        result = self._records.update_one(
            {"_id": record_key, "claim": claim, "state": IN_PROGRESS},
            {"$set": {"state": COMPLETED, "response": response, "completed_at": utc(now)}},
        )
        return result.modified_count == 1

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete records past retention (MongoDB's TTL index does it too, eventually)."""
        return self._records.delete_many({"expires_at": {"$lte": utc(now)}}).deleted_count

    def _claim_document(self, record_key: str, claim: str, body_sha256: str, now: datetime) -> dict[str, Any]:
        return {
            "_id": record_key,
            "state": IN_PROGRESS,
            "claim": claim,
            "body_sha256": body_sha256,
            "lease_until": now + self._lease,
            "created_at": now,
            "expires_at": now + self._retention,
        }

    def _take_over(
        self, existing: dict[str, Any], claim: str, body_sha256: str, now: datetime, condition: dict[str, Any]
    ) -> bool:
        """Replace ``existing`` with our claim if it still matches ``condition``."""
        fresh = self._claim_document(existing["_id"], claim, body_sha256, now)
        fresh.pop("_id")
        taken = self._records.find_one_and_update(
            {"_id": existing["_id"], **condition},
            {"$set": fresh, "$unset": {"response": "", "completed_at": ""}},
            return_document=ReturnDocument.AFTER,
        )
        return taken is not None and taken["claim"] == claim


def _record_key(key: str, subject: str, route: str) -> str:
    scoped = "\x00".join((subject, route, key)).encode()
    return hashlib.sha256(scoped).hexdigest()


def _record_id(record_key: str, claim: str) -> str:
    return f"{record_key}.{claim}"


def _parse_record_id(record_id: str) -> tuple[str, str]:
    record_key, _, claim = record_id.partition(".")
    if not record_key or not claim:
        raise ValueError(f"not an idempotency record id: {record_id!r}")
    return record_key, claim


def _as_bytes(body: bytes | str | None) -> bytes:
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))
