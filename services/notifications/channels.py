"""The two ways a message leaves the platform: email over SMTP and SMS through a provider's HTTP API (Twilio's
Messages API shape), each behind ``send(delivery) -> provider message id``, and the calendar file a visit's
email carries.

A failure is either *permanent* (the server refuses the address, the provider refuses the number: retrying
cannot help, the delivery fails at once with that reason) or *transient* (connection refused, timeout, a 4xx
SMTP reply, a 5xx or 429 answer: retried with backoff).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import requests
from icalendar import Calendar, Event

from chassis.clock import utcnow


class DeliveryFailed(Exception):
    """A send failed; ``permanent`` when retrying cannot help."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


def visit_calendar(appointment_id: str, start_at: datetime, end_at: datetime, sequence: int,
                   organizer_name: str, domain: str) -> str:
    """An iCalendar file with the visit as one event; the same UID with a higher SEQUENCE moves it in the
    patient's calendar when the visit is rescheduled. The summary says "Home visit" and nothing more."""
    calendar = Calendar()
    calendar.add("prodid", f"-//{organizer_name}//visits//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"{appointment_id}@{domain}")
    event.add("dtstamp", utcnow())
    event.add("dtstart", start_at)
    event.add("dtend", end_at)
    event.add("sequence", sequence)
    event.add("summary", f"Home visit ({organizer_name})")
    event.add("status", "CONFIRMED")
    calendar.add_component(event)
    return calendar.to_ical().decode()


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # "starttls", "tls" (implicit, usually port 465) or "none"
    username: str = ""
    password: str = ""
    sender: str = "Home Care Visits <no-reply@example.com>"
    timeout_seconds: float = 10.0
    ca_file: str = ""  # a CA bundle to trust instead of the system's (an internal relay's own CA)

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file or None)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SmtpSettings | None:
        if not config.get("SMTP_HOST"):
            return None
        security = str(config.get("SMTP_SECURITY") or "starttls").lower()
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"SMTP_SECURITY must be starttls, tls or none, not {security!r}")
        return cls(str(config["SMTP_HOST"]), int(config.get("SMTP_PORT") or 587), security,
                   str(config.get("SMTP_USERNAME") or ""), str(config.get("SMTP_PASSWORD") or ""),
                   str(config.get("MAIL_FROM") or cls.sender), float(config.get("SMTP_TIMEOUT_SECONDS") or 10),
                   str(config.get("SMTP_CA_FILE") or ""))


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def compose(self, delivery: dict[str, Any]) -> EmailMessage:
        """A multipart email: plain text and HTML alternatives, and the visit's ``.ics`` when it has one."""
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = delivery["to"]
        message["Subject"] = delivery["subject"]
        message["Date"] = format_datetime(utcnow())
        # the same record always has the same Message-ID: a resend after a crash is recognisably the same email
        message["Message-ID"] = f"<{delivery['_id']}@{parseaddr(self.settings.sender)[1].rpartition('@')[2]}>"
        message.set_content(delivery["body"])
        if delivery.get("html"):
            message.add_alternative(delivery["html"], subtype="html")
        if delivery.get("calendar"):
            message.add_attachment(delivery["calendar"].encode(), maintype="text", subtype="calendar",
                                   filename="visit.ics", params={"method": "PUBLISH"})
        return message

    def send(self, delivery: dict[str, Any]) -> str:
        settings = self.settings
        message = self.compose(delivery)
        try:
            if settings.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout_seconds,
                                                        context=settings.tls_context())
            else:
                client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
            with client:
                if settings.security == "starttls":
                    client.starttls(context=settings.tls_context())
                if settings.username:
                    client.login(settings.username, settings.password)
                client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:  # the settings are wrong: retried until they are fixed
            raise DeliveryFailed(f"the mail server refused the login: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise DeliveryFailed(f"the mail server refused {delivery['to']}: {code} {_text(reply)}",
                                 permanent=code >= 500) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryFailed(f"the mail server answered {exc.smtp_code} {_text(exc.smtp_error)}",
                                 permanent=exc.smtp_code >= 500 and exc.smtp_code != 554) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"the mail server could not be reached: {exc!r}") from exc
        return message["Message-ID"]


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


@dataclass(frozen=True)
class SmsSettings:
    api_base: str  # https://api.twilio.com, or the provider double
    account_sid: str
    auth_token: str
    sender: str
    timeout_seconds: float = 10.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SmsSettings | None:
        if not config.get("SMS_API_BASE"):
            return None
        return cls(str(config["SMS_API_BASE"]).rstrip("/"), str(config.get("SMS_ACCOUNT_SID") or ""),
                   str(config.get("SMS_AUTH_TOKEN") or ""), str(config.get("SMS_FROM") or ""),
                   float(config.get("SMS_TIMEOUT_SECONDS") or 10))


class SmsSender:
    """Twilio's Messages API: ``POST {base}/2010-04-01/Accounts/{sid}/Messages.json`` with basic auth and a
    form body (``To``, ``From``, ``Body``); answers 201 with the message ``sid``."""

    def __init__(self, settings: SmsSettings) -> None:
        self.settings = settings
        self.http = requests.Session()
        self.http.auth = (settings.account_sid, settings.auth_token)

    def send(self, delivery: dict[str, Any]) -> str:
        settings = self.settings
        url = f"{settings.api_base}/2010-04-01/Accounts/{settings.account_sid}/Messages.json"
        try:
            answer = self.http.post(url, data={"To": delivery["to"], "From": settings.sender,
                                               "Body": delivery["body"]}, timeout=settings.timeout_seconds)
        except requests.RequestException as exc:
            raise DeliveryFailed(f"the SMS provider could not be reached: {exc!r}") from exc
        if answer.status_code in (200, 201):
            return str(answer.json()["sid"])
        detail = _provider_error(answer)
        permanent = 400 <= answer.status_code < 500 and answer.status_code not in (401, 403, 408, 429)
        raise DeliveryFailed(f"the SMS provider answered {answer.status_code}: {detail}", permanent=permanent)


def _provider_error(answer: requests.Response) -> str:
    try:
        document = answer.json()
    except ValueError:
        return answer.text[:200]
    return str(document.get("message") or document)[:200] if isinstance(document, dict) else str(document)[:200]
