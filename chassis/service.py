"""What every Nameko service class starts from, and how it validates what it is given."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError

from chassis.errors import InvalidInput
from chassis.logs import CorrelationContext


class ServiceBase:
    """Gives every worker a correlation id for logs, RPC and events (see ``chassis.logs``)."""

    correlation_id = CorrelationContext()


def validated(schema: Schema, data: Any) -> dict[str, Any]:
    """``data`` loaded by ``schema`` (unknown fields refused), or ``InvalidInput`` naming each bad field."""
    if not isinstance(data, dict):
        raise InvalidInput("expected an object", errors={"_schema": ["Invalid input type."]})
    try:
        return schema.load(data, unknown=RAISE)
    except ValidationError as exc:
        raise InvalidInput("the request has invalid fields", errors=exc.normalized_messages()) from exc
