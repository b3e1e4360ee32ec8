"""Append-only audit log of access to protected health information (45 CFR 164.312(b)).

The log can only be added to and read. An entry is written *before* the access it records (who, what,
which record, when, from where, which request): if it cannot be written, the access does not happen. Once
the request is answered, its outcome (the HTTP status) and the record it created are filled in once, by an
update that matches only an entry whose outcome is still unset; nothing else ever changes an entry, and
:class:`AuditLog` has no delete. An entry without an outcome is a request still running, or one whose
outcome could not be written (the gateway logs that at ERROR and counts it).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from chassis.clock import utc
from chassis.pagination import Page, fetch_page

COLLECTION = "audit_log"
ACTIONS = ("read", "create", "update", "delete", "send", "list")
MAX_USER_AGENT_LENGTH = 512
MAX_PAGE_SIZE = 200


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """Who did what to which record, from where, and how it ended (the HTTP status; None until answered)."""

    subject: str
    role: str
    action: str
    resource: str
    resource_id: str | None = None
    at: datetime = field(default_factory=utc)
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    outcome: int | None = None
    entry_id: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"audit action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        if not self.subject or not self.resource:
            raise ValueError("an audit entry needs a subject and a resource")
        if self.outcome is not None and not 100 <= self.outcome <= 599:
            raise ValueError(f"outcome must be an HTTP status, not {self.outcome!r}")
        object.__setattr__(self, "at", utc(self.at))
        if self.user_agent is not None:
            object.__setattr__(self, "user_agent", self.user_agent[:MAX_USER_AGENT_LENGTH])


class AuditLog:
    """Records and searches audit entries in the gateway's database."""

    def __init__(self, db: Database) -> None:
        self._entries = db[COLLECTION]
        self._entries.create_index([("at", DESCENDING), ("_id", DESCENDING)])
        self._entries.create_index([("subject", ASCENDING), ("at", DESCENDING)])
        self._entries.create_index([("resource", ASCENDING), ("resource_id", ASCENDING), ("at", DESCENDING)])

    def record(self, entry: AuditEntry) -> str:
        """Append ``entry`` (before the access it records, its outcome unset); returns its id."""
        entry_id = uuid.uuid4().hex
        document = asdict(entry)
        document.pop("entry_id")
        if document["outcome"] is None:
            document.pop("outcome")  # unset until the request is answered: ``conclude`` fills it in once
        self._entries.insert_one({"_id": entry_id, **document})
        return entry_id

    def conclude(self, entry_id: str, outcome: int, resource_id: str | None = None) -> bool:
        """Fill in how the request ended (and the record it created), once: False if it already was."""
        if not 100 <= outcome <= 599:
            raise ValueError(f"outcome must be an HTTP status, not {outcome!r}")
        filled: dict[str, Any] = {"outcome": outcome}
        if resource_id is not None:
            filled["resource_id"] = resource_id
        result = self._entries.update_one({"_id": entry_id, "outcome": {"$exists": False}}, {"$set": filled})
        return result.modified_count == 1

    def query(
        self,
        subject: str | None = None,
        resource: str | None = None,
        resource_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | str | None = 50,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        """Entries matching every given filter, newest first; ``since`` inclusive, ``until`` exclusive."""
        criteria: dict[str, Any] = {}
        if subject is not None:
            criteria["subject"] = subject
        if resource is not None:
            criteria["resource"] = resource
        if resource_id is not None:
            criteria["resource_id"] = resource_id
        if since is not None or until is not None:
            window: dict[str, datetime] = {}
            if since is not None:
                window["$gte"] = utc(since)
            if until is not None:
                window["$lt"] = utc(until)
            criteria["at"] = window
        return fetch_page(self._entries, criteria, "at", limit=limit, cursor=cursor, descending=True, to_item=_to_entry,
                          default_limit=50, max_limit=MAX_PAGE_SIZE)


def _to_entry(document: dict[str, Any]) -> AuditEntry:
    known = {name: document[name] for name in _STORED_FIELDS if name in document}
    return AuditEntry(entry_id=document["_id"], **known)


_STORED_FIELDS = tuple(f.name for f in fields(AuditEntry) if f.name != "entry_id")
