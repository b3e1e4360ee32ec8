"""Notification rules as plain functions: rendering in the patient's time zone, with no health words."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, fields

from chassis.config import ConfigVersion


class TemplateSchema(Schema):
    email_subject = fields.String(required=True)
    email_body = fields.String(required=True)
    sms = fields.String()


class MessageCatalogueSchema(Schema):
    forbidden_words = fields.List(fields.String(), required=True)
    templates = fields.Dict(keys=fields.String(), values=fields.Nested(TemplateSchema), required=True)


class HealthDetailInText(Exception):
    """A text or subject line would reveal health information; it is never sent."""


@dataclass(frozen=True)
class RenderedMessage:
    channel: str  # "email" or "sms"
    to: str
    subject: str | None
    body: str


def local_time(moment: datetime, time_zone: str) -> str:
    """``Tuesday, November 24 at 10:00 AM EST``: the instant as the patient reads it, DST included."""
    local = moment.astimezone(ZoneInfo(time_zone))
    return f"{local:%A, %B} {local.day} at {local:%I:%M %p}".replace(" 0", " ") + f" {local:%Z}"


def local_date(moment: datetime, time_zone: str) -> str:
    local = moment.astimezone(ZoneInfo(time_zone))
    return f"{local:%B} {local.day}, {local.year}"


def money(amount_cents: int, currency: str) -> str:
    symbol = "$" if currency.lower() == "usd" else f"{currency.upper()} "
    return f"{symbol}{amount_cents // 100:,}.{amount_cents % 100:02d}"


def assert_no_health_words(text: str, forbidden_words: list[str]) -> None:
    """Refuse a text holding a forbidden word, or its plural ("infusions", "doses"); "Spain" is fine."""
    forbidden = {w.lower() for w in forbidden_words}
    words = set(re.findall(r"[a-z]+", text.lower()))
    singular = {w[:-2] for w in words if w.endswith("es")} | {w[:-1] for w in words if w.endswith("s")}
    found = sorted((words | singular) & forbidden)
    if found:
        raise HealthDetailInText(f"text would reveal health details: {found}")


def render(catalogue: ConfigVersion, event_type: str, contact: dict[str, Any],
           values: dict[str, str]) -> list[RenderedMessage]:
    """The messages an event sends a patient: email always, SMS only with consent to texts."""
    template = catalogue["templates"][event_type]
    values = {"first_name": contact["first_name"], **values}
    subject = template["email_subject"].format(**values)
    assert_no_health_words(subject, catalogue["forbidden_words"])
    messages = [RenderedMessage("email", contact["email"], subject, template["email_body"].format(**values))]
    if template.get("sms") and contact.get("sms_opt_in"):
        sms = template["sms"].format(**values)
        assert_no_health_words(sms, catalogue["forbidden_words"])
        messages.append(RenderedMessage("sms", contact["phone"], None, sms))
    return messages
