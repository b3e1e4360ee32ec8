"""Notifications' interface fixtures: the service on the real broker and store, sending to a real SMTP server
(aiosmtpd on loopback, keeping each message as a file) and to the SMS provider double, each in its own process,
as ``make run`` starts them."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests
from nameko.standalone.events import event_dispatcher

from chassis.clock import isoformat
from chassis.ids import new_id
from services.notifications.service import NotificationsService


def start_process(module: str, directory: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", module, "--port", "0", "--directory", str(directory), *extra],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    if not line.startswith("ready "):
        process.kill()
        raise RuntimeError(f"{module} did not start: {line!r}")
    return process, line.split(" ", 1)[1]


class MailServer:
    def __init__(self, directory: Path, address: str) -> None:
        self.directory = directory
        self.host, port = address.split(":")
        self.port = int(port)

    def received(self) -> list[EmailMessage]:
        return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(self.directory.glob("*.eml"))]

    def clear(self) -> None:
        for path in self.directory.glob("*.eml"):
            path.unlink()


class SmsProvider:
    def __init__(self, directory: Path, url: str) -> None:
        self.directory = directory
        self.url = url

    def texts(self) -> list[dict]:
        return [json.loads(path.read_text()) for path in sorted(self.directory.glob("*.json"))]

    def fail_next(self, count: int) -> None:
        requests.post(f"{self.url}/control", json={"fail_next": count}, timeout=5).raise_for_status()

    def clear(self) -> None:
        self.fail_next(0)
        for path in self.directory.glob("*.json"):
            path.unlink()


@pytest.fixture(scope="module")
def mail_server_process(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mail")
    process, address = start_process("services.notifications.mail_sink", directory, "--refuse", "nobody@")
    yield MailServer(directory, address)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def sms_provider_process(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sms")
    process, url = start_process("services.notifications.sms_double", directory, "--account-sid", "AC_test",
                                 "--auth-token", "secret")
    yield SmsProvider(directory, url)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def mail_server(mail_server_process):
    mail_server_process.clear()
    return mail_server_process


@pytest.fixture
def sms_provider(sms_provider_process):
    sms_provider_process.clear()
    return sms_provider_process


@pytest.fixture
def notifications_config(service_config, mail_server, sms_provider):
    return {**service_config, "SMTP_HOST": mail_server.host, "SMTP_PORT": mail_server.port, "SMTP_SECURITY": "none",
            "MAIL_FROM": "Home Care Visits <visits@example.com>",
            "SMS_API_BASE": sms_provider.url, "SMS_ACCOUNT_SID": "AC_test", "SMS_AUTH_TOKEN": "secret",
            "SMS_FROM": "+13035550000", "DELIVERY_POLL_SECONDS": 0.1, "DELIVERY_FIRST_RETRY_SECONDS": 0.2,
            "DELIVERY_LONGEST_RETRY_SECONDS": 0.5, "DELIVERY_MAX_ATTEMPTS": 4, "DELIVERY_LEASE_SECONDS": 5,
            "ON_CALL_EMAIL": "on-call@clinic.example.com",
            "CLINICIAN_EMAILS": {"cln_lee": "dr.lee@clinic.example.com"}, "EVENT_RETRY_DELAYS": [0.3, 0.6, 1, 2]}


@pytest.fixture
def start_notifications(container_factory, notifications_config):
    def start(**changes):
        container = container_factory(NotificationsService, {**notifications_config, **changes})
        container.start()
        return container
    return start


@pytest.fixture
def notifications(start_notifications):
    return start_notifications()


@pytest.fixture
def publish(service_config):
    dispatch = event_dispatcher(service_config)
    return lambda event: dispatch(event["producer"], event["type"], event)


@pytest.fixture
def db(mongo_client, database_prefix):
    return mongo_client[database_prefix + "notifications"]


def zone_at_local_hour(hour: int) -> str:
    """A fixed-offset time zone where it is now about ``hour`` o'clock (to test quiet hours at any hour)."""
    offset = (hour - datetime.now(UTC).hour + 12) % 24 - 12
    return f"Etc/GMT{-offset:+d}"


DAYTIME = zone_at_local_hour(13)
NIGHT = zone_at_local_hour(2)


def event(producer: str, event_type: str, payload: dict) -> dict:
    """An envelope with the payload of ``docs/events.md`` (the producers are built elsewhere, in parallel)."""
    return {"event_id": new_id("evt"), "type": event_type, "version": 1, "occurred_at": isoformat(datetime.now(UTC)),
            "correlation_id": None, "producer": producer,
            "payload": {k: isoformat(v) if isinstance(v, datetime) else v for k, v in payload.items()}}


def registered(patient_id: str = "pat_ana", sms_opt_in: bool = True, first_name: str = "Ana",
               time_zone: str = "America/Denver", email_address: str | None = None,
               phone: str = "+13035550100") -> dict:
    return event("intake", "patient.registered", {
        "patient_id": patient_id, "first_name": first_name,
        "email": email_address or f"{first_name.lower()}@example.com", "phone": phone,
        "time_zone": time_zone, "sms_opt_in": sms_opt_in})


def booked(start_at: datetime, patient_id: str = "pat_ana", appointment_id: str = "apt_1",
           time_zone: str = "America/Denver", visit_type: str = "iv-mood") -> dict:
    return event("scheduling", "appointment.booked", {
        "appointment_id": appointment_id, "patient_id": patient_id, "nurse_id": "nur_kim", "visit_type": visit_type,
        "start_at": start_at, "end_at": start_at + timedelta(hours=2), "time_zone": time_zone})
