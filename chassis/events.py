"""The event envelope, and payload schemas per event type and version.

Every event travels as::

    {"event_id": "evt_...", "type": "appointment.booked", "version": 1,
     "occurred_at": "2026-11-23T20:15:00Z", "correlation_id": "...", "producer": "scheduling",
     "payload": {...}}

The producing service registers a payload schema for each (type, version) it emits in its ``events.py``
and ``make_event`` refuses a payload that does not match. Consumers read the fields they need with their
own tolerant schema (``chassis.subscriber.subscribe(..., payload_schema=...)``): they do not import the
producer's code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from chassis.clock import isoformat, utcnow
from chassis.ids import new_id


class EventInvalid(Exception):
    """An event that can never be handled as it is: it goes straight to the dead-letter queue."""


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    type = fields.String(required=True, validate=validate.Regexp(r"^[a-z_]+(\.[a-z_]+)+$"))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True)
    correlation_id = fields.String(required=True, allow_none=True)
    producer = fields.String(required=True)
    payload = fields.Dict(required=True)


_PAYLOAD_SCHEMAS: dict[tuple[str, int], type[Schema]] = {}


def event_schema(event_type: str, version: int = 1) -> Callable[[type[Schema]], type[Schema]]:
    """Class decorator registering the payload schema of an event type the service emits."""

    def register(schema_class: type[Schema]) -> type[Schema]:
        _PAYLOAD_SCHEMAS[(event_type, version)] = schema_class
        return schema_class

    return register


def make_event(producer: str, event_type: str, payload: dict[str, Any], correlation_id: str | None,
               version: int = 1, occurred_at: datetime | None = None) -> dict[str, Any]:
    """A new envelope, its payload validated and serialised by the registered schema."""
    schema_class = _PAYLOAD_SCHEMAS.get((event_type, version))
    if schema_class is None:
        raise EventInvalid(f"no schema registered for {event_type} v{version}")
    schema = schema_class()
    errors = schema.validate(schema.dump(payload))
    if errors:
        raise EventInvalid(f"{event_type} v{version} payload invalid: {errors}")
    return {
        "event_id": new_id("evt"),
        "type": event_type,
        "version": version,
        "occurred_at": isoformat(occurred_at or utcnow()),
        "correlation_id": correlation_id,
        "producer": producer,
        "payload": schema.dump(payload),
    }


@dataclass(frozen=True)
class Event:
    """An event as a handler sees it: the envelope's fields and the payload loaded by the consumer's schema."""

    event_id: str
    type: str
    version: int
    occurred_at: datetime
    correlation_id: str | None
    producer: str
    payload: dict[str, Any]


def read_event(body: Any, payload_schemas: dict[int, type[Schema]]) -> Event:
    """Validate an incoming envelope and load its payload with the consumer's schema for its version."""
    try:
        envelope = EnvelopeSchema().load(body)
    except ValidationError as exc:
        raise EventInvalid(f"bad envelope: {exc.messages}") from exc
    schema_class = payload_schemas.get(envelope["version"])
    if schema_class is None:
        raise EventInvalid(f"{envelope['type']} v{envelope['version']} is not a version this handler reads")
    try:
        payload = schema_class(unknown=EXCLUDE).load(envelope["payload"])
    except ValidationError as exc:
        raise EventInvalid(f"{envelope['type']} payload invalid: {exc.messages}") from exc
    return Event(envelope["event_id"], envelope["type"], envelope["version"], envelope["occurred_at"],
                 envelope["correlation_id"], envelope["producer"], payload)
