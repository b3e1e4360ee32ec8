"""What every Nameko service class starts from, and how it validates what it is given."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError

from chassis.errors import InvalidInput
from chassis.logs import CorrelationContext
from chassis.rpc import rpc


class ServiceBase:
    """Gives every worker a correlation id for logs, RPC and events (see ``chassis.logs``)."""

    correlation_id = CorrelationContext()


class RpcServiceBase(ServiceBase):
    """A service others call by RPC; ``health`` lets the gateway's ``/ready`` ask whether it answers."""

    @rpc
    def health(self) -> dict[str, str]:
        store = getattr(self, "store", None)
        if store is not None:
            store.db.command("ping")
        return {"status": "ok"}


def plausible_instant(value: datetime) -> None:
    """Field validator: refuse times outside the years 1901-2199 (and so any that cannot even be put in UTC)."""
    if not 1900 < value.year < 2200:
        raise ValidationError("must lie between the years 1901 and 2199")


def date_in_the_past(value: date) -> None:
    """Field validator for birth dates: after 1900 and not in the future."""
    if not date(1900, 1, 1) <= value <= datetime.now(UTC).date():
        raise ValidationError("must be a past date after 1900")


def validated(schema: Schema, data: Any) -> dict[str, Any]:
    """``data`` loaded by ``schema`` (unknown fields refused), or ``InvalidInput`` naming each bad field."""
    if not isinstance(data, dict):
        raise InvalidInput("expected an object", errors={"_schema": ["Invalid input type."]})
    try:
        return schema.load(data, unknown=RAISE)
    except ValidationError as exc:
        raise InvalidInput("the request has invalid fields", errors=exc.normalized_messages()) from exc
