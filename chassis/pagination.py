"""Cursor pagination for every list: a stable order on (sort field, _id), and opaque cursors.

A cursor encodes the sort key of the last item of a page; the next page starts strictly after it, so
items added meanwhile neither repeat nor shift the pages. Cursors are checked when read (canonical
base64 of a flat JSON object of scalars, in the shape this module writes): anything else is a 400
``invalid_cursor``, and never reaches a query.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection

from chassis.clock import as_utc
from chassis.errors import DomainError

MAX_CURSOR_LENGTH = 1024
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_SCALARS = (str, int, float, bool, type(None))


class InvalidCursor(DomainError):
    status = 400
    code = "invalid_cursor"


class InvalidLimit(DomainError):
    status = 400
    code = "invalid_limit"


@dataclass(frozen=True)
class Page[T]:
    """One page of a list; ``next_cursor`` is None on the last page."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(position: Mapping[str, Any]) -> str:
    """A flat mapping of JSON scalars as an opaque, URL-safe cursor."""
    _check_shape(position, ValueError)
    raw = json.dumps(dict(position), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """Read a cursor made by ``encode_cursor``; anything else raises ``InvalidCursor``."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("The cursor is empty or too long.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidCursor("The cursor is not one this API issued.") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != cursor:
        raise InvalidCursor("The cursor is not one this API issued.")
    _check_shape(decoded, InvalidCursor)
    return decoded


def encode_position(sort_value: Any, document_id: str) -> str:
    """The cursor pointing just after the item with this (sort value, id)."""
    if isinstance(sort_value, datetime):
        if sort_value.tzinfo is None:
            raise ValueError("a time in a cursor must be timezone-aware")
        return encode_cursor({"at": as_utc(sort_value).isoformat(), "id": str(document_id)})
    return encode_cursor({"value": sort_value, "id": str(document_id)})


def decode_position(cursor: str) -> tuple[Any, str]:
    """The (sort value, id) a cursor made by ``encode_position`` points after."""
    decoded = decode_cursor(cursor)
    if not isinstance(decoded.get("id"), str) or set(decoded) not in ({"at", "id"}, {"value", "id"}):
        raise InvalidCursor("The cursor is not one this API issued.")
    if "value" in decoded:
        return decoded["value"], decoded["id"]
    try:
        moment = datetime.fromisoformat(decoded["at"])
    except (TypeError, ValueError) as exc:
        raise InvalidCursor("The cursor is not one this API issued.") from exc
    if moment.tzinfo is None:
        raise InvalidCursor("The cursor is not one this API issued.")
    return as_utc(moment), decoded["id"]


def clamp_limit(value: int | str | None, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """A page size: None gives ``default``, above ``maximum`` is capped, below 1 or not a whole number is refused."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidLimit("limit must be an integer.")
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.lstrip("+-").isdigit():
            raise InvalidLimit("limit must be an integer.")
        value = int(text)
    if not isinstance(value, int):
        raise InvalidLimit("limit must be an integer.")
    if value < 1:
        raise InvalidLimit("limit must be at least 1.")
    return min(value, maximum)


def fetch_page[T](collection: Collection, query: Mapping[str, Any], sort_field: str, *,
                  limit: int | str | None = None, cursor: str | None = None, descending: bool = False,
                  projection: Mapping[str, Any] | None = None, to_item: Callable[[dict[str, Any]], T] | None = None,
                  default_limit: int = DEFAULT_PAGE_SIZE, max_limit: int = MAX_PAGE_SIZE) -> Page[T]:
    """One page of ``collection`` matching ``query`` in (sort field, _id) order, and the next page's cursor."""
    size = clamp_limit(limit, default=default_limit, maximum=max_limit)
    conditions = [dict(query)] if query else []
    if cursor is not None:
        value, document_id = decode_position(cursor)
        beyond = "$lt" if descending else "$gt"
        if sort_field == "_id":
            conditions.append({"_id": {beyond: document_id}})
        else:
            conditions.append({"$or": [{sort_field: {beyond: value}},
                                       {sort_field: value, "_id": {beyond: document_id}}]})
    mongo_filter = {"$and": conditions} if len(conditions) > 1 else (conditions[0] if conditions else {})
    direction = DESCENDING if descending else ASCENDING
    order = [(sort_field, direction)] + ([("_id", direction)] if sort_field != "_id" else [])
    found = list(collection.find(mongo_filter, projection).sort(order).limit(size + 1))
    next_cursor = None
    if len(found) > size:
        found = found[:size]
        next_cursor = encode_position(found[-1][sort_field], found[-1]["_id"])
    convert = to_item or (lambda document: document)
    return Page([convert(document) for document in found], next_cursor)


def _check_shape(position: Any, error: type[Exception]) -> None:
    if not isinstance(position, Mapping) or not position:
        raise error("A cursor must be a non-empty JSON object.")
    for key, value in position.items():
        if not isinstance(key, str) or not isinstance(value, _SCALARS):
            raise error("A cursor holds only string keys and scalar values.")
