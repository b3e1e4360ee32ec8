"""How notifications reaches its store, its configuration, its templates and its channels."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from nameko.extensions import DependencyProvider
from nameko.timer import Timer
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure

from chassis.config import VersionedConfig
from services.notifications.channels import SmsSender, SmsSettings, SmtpMailer, SmtpSettings
from services.notifications.domain import MessageCatalogueSchema, RetryPolicy, sample_values
from services.notifications.rendering import Templates, check_templates

CONFIG_DIR = Path(__file__).parent / "config"


def create_indexes(db: Database) -> None:
    db.messages.create_index([("patient_id", ASCENDING), ("created_at", ASCENDING)], name="by_patient")
    db.messages.create_index([("status", ASCENDING), ("not_before", ASCENDING)], name="due")
    db.reminders.create_index([("status", ASCENDING), ("due_at", ASCENDING)], name="due")
    db.reminders.create_index([("appointment_id", ASCENDING)], name="by_appointment")
    # STOP and START look a number up in what intake registered and in any later update (``_set_stopped``)
    db.contacts.create_index([("registered.phone", ASCENDING)], name="by_registered_phone")
    db.contacts.create_index([("updates.phone", ASCENDING)], name="by_updated_phone")
    _drop_index(db.contacts, "by_phone")  # on a field the contacts never had


def _drop_index(collection: Collection, name: str) -> None:
    """Drop an index an earlier version created, if it is still there (another process may drop it first)."""
    if name in collection.index_information():
        try:
            collection.drop_index(name)
        except OperationFailure:
            pass


def load_message_catalogue(path: str | Path | None = None, templates: Templates | None = None) -> VersionedConfig:
    """The versioned catalogue, refused (naming the template) unless every template it sends renders with
    sample values without a health word in a subject or a text."""
    catalogue = VersionedConfig.load(path or CONFIG_DIR / "messages.yml", MessageCatalogueSchema())
    check_templates(catalogue, templates or Templates(), sample_values)
    return catalogue


class ConfiguredTimer(Timer):
    """A Nameko timer whose interval is a setting (``setting``), so tests and deployments can tune it."""

    def __init__(self, setting: str, interval: float, **kwargs: Any) -> None:
        self.setting = setting
        super().__init__(interval, **kwargs)

    def setup(self) -> None:
        self.interval = float(self.container.config.get(self.setting) or self.interval)
        super().setup()


class Channels(DependencyProvider):
    """The channels this process can send on (email when ``SMTP_HOST`` is set, SMS when ``SMS_API_BASE`` is),
    the retry policy, and the staff addresses. A message on a channel with no settings waits, recorded."""

    def setup(self) -> None:
        config = self.container.config
        smtp, sms = SmtpSettings.from_config(config), SmsSettings.from_config(config)
        self.senders: dict[str, Any] = {}
        if smtp is not None:
            self.senders["email"] = SmtpMailer(smtp)
        if sms is not None:
            self.senders["sms"] = SmsSender(sms)
        self.configured = tuple(self.senders)
        self.retry = RetryPolicy(int(config.get("DELIVERY_MAX_ATTEMPTS") or 5),
                                 float(config.get("DELIVERY_FIRST_RETRY_SECONDS") or 30),
                                 float(config.get("DELIVERY_LONGEST_RETRY_SECONDS") or 1800))
        self.lease = timedelta(seconds=float(config.get("DELIVERY_LEASE_SECONDS") or 60))
        self.batch_size = int(config.get("DELIVERY_BATCH_SIZE") or 20)
        self.on_call_email = str(config.get("ON_CALL_EMAIL") or "")
        clinicians = config.get("CLINICIAN_EMAILS") or {}
        self.clinician_emails = dict(json.loads(clinicians) if isinstance(clinicians, str) else clinicians)
        self.calendar_domain = str(config.get("CALENDAR_DOMAIN") or "visits.example.com")
        # off only for demonstrations: every message then goes at once, whatever the hour where the patient is
        self.quiet_hours = str(config.get("QUIET_HOURS", "on")).lower() not in ("off", "false", "0")

    def staff_addresses(self, clinician_id: str | None) -> list[str]:
        addresses = [self.clinician_emails.get(clinician_id or ""), self.on_call_email]
        return list(dict.fromkeys(a for a in addresses if a))

    def send(self, message: dict[str, Any]) -> str:
        return self.senders[message["channel"]].send(message)

    def get_dependency(self, worker_ctx: Any) -> Channels:
        return self
