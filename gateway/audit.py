"""Append-only audit log of access to protected health information (45 CFR 164.312(b)).

The log can only be added to and read: :class:`AuditLog` has no update or delete
method, and entries are never rewritten.
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
    """Who did what to which record, from where, and how it ended (the HTTP status)."""

    subject: str
    role: str
    action: str
    resource: str
    resource_id: str | None = None
    at: datetime = field(default_factory=utc)
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    outcome: int
    entry_id: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"audit action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        if not self.subject or not self.resource:
            raise ValueError("an audit entry needs a subject and a resource")
        if not 100 <= self.outcome <= 599:
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
        """Append ``entry``; returns its id."""
        entry_id = uuid.uuid4().hex
        document = asdict(entry)
        document.pop("entry_id")
        self._entries.insert_one({"_id": entry_id, **document})
        return entry_id

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
