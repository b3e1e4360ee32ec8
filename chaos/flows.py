"""What the chaos load does: client flows through the gateway, each retried the way a real client retries.

A flow is a function ``flow(client, journal)`` run over and over by each load worker until the run ends. It
calls the public API through ``Client``, which repeats a request with the *same* ``Idempotency-Key`` and body
after a connection error, a 5xx or a 409 ``request_in_progress`` (as the website and the apps do), and
writes every request the platform accepted into the ``Journal``, which the invariants compare with the
stores afterwards. The service issues add their flows to ``FLOWS``.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from services.intake.walkthrough import STANDARD_PLAN, UNREMARKABLE_ANSWERS, VISIT_DETAILS

RETRYABLE = {500, 502, 503, 504}


@dataclass
class Journal:
    """What the platform accepted (2xx), by flow, and what was never settled (the client gave up)."""

    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    unsettled: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, kind: str, record: dict[str, Any]) -> None:
        with self.lock:
            self.accepted.setdefault(kind, []).append(record)

    def count(self, table: str, kind: str) -> None:
        with self.lock:
            counts = getattr(self, table)
            counts[kind] = counts.get(kind, 0) + 1


class Client:
    """One website or app session: requests to any of the gateways, retried with the same key."""

    def __init__(self, gateways: list[str], tokens: Callable[[str, str], str], deadline: float,
                 give_up_after: float = 90) -> None:
        self.gateways = gateways
        self.tokens = tokens
        self.deadline = deadline
        self.give_up_after = give_up_after
        self.http = requests.Session()

    def token(self, role: str, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens(role, subject)}"}

    def send(self, method: str, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
             idempotency_key: str | None = None, params: dict[str, str] | None = None) -> requests.Response | None:
        """The final answer to one request (None if it never got one), retried as a real client would."""
        headers = {**(headers or {}), **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
        give_up = time.monotonic() + self.give_up_after
        pause = 0.2
        while time.monotonic() < give_up:
            gateway = random.choice(self.gateways)
            try:
                response = self.http.request(method, gateway + path, json=body, headers=headers, params=params,
                                             timeout=15)
            except requests.RequestException:
                response = None
            if response is not None and response.status_code not in RETRYABLE and not (
                    response.status_code == 409 and response.json().get("code") == "request_in_progress"):
                return response
            if method != "GET" and idempotency_key is None:
                return response  # without a key a retry could do it twice: give up, as a careful client does
            wait = float(response.headers.get("Retry-After", pause)) if response is not None else pause
            time.sleep(min(max(wait, 0.1), 3))
            pause = min(pause * 2, 3)
        return None


_numbers = itertools.count(1)
STATES = {"CO": ("America/Denver", "80202"), "AZ": ("America/Phoenix", "85004"), "NV": ("America/Los_Angeles", "89501")}


def a_patient(n: int) -> dict[str, Any]:
    state = random.choice(list(STATES))
    time_zone, postal_code = STATES[state]
    return {"first_name": f"Chaos{n}", "last_name": "Load", "email": f"chaos{n}-{uuid.uuid4().hex[:6]}@example.com",
            "phone": "+13035550142", "date_of_birth": "1980-02-03", "time_zone": time_zone, "sms_opt_in": True,
            "address": {"line1": f"{n} Main St", "city": "Somewhere", "state": state, "postal_code": postal_code},
            **VISIT_DETAILS}


def clear(client: Client, journal: Journal, patient_id: str) -> str | None:
    """Screening, consent and an admin's approval, each step retried with its own key: the consent's id, or
    None if a step failed."""
    patient, admin = client.token("patient", patient_id), client.token("admin", "chaos-clinic")
    steps = [("POST", f"/v1/patients/{patient_id}/screenings", {"instrument": instrument, "answers": answers},
              patient) for instrument, answers in UNREMARKABLE_ANSWERS.items()]
    for method, path, body, headers in steps:
        answer = client.send(method, path, body, headers=headers, idempotency_key=f"screen-{uuid.uuid4().hex}")
        if answer is None or answer.status_code != 201:
            table = "refused" if answer is not None else "unsettled"
            journal.count(table, f"screening {answer and answer.status_code}")
            return None
    document = client.send("GET", "/v1/consent-documents/current", headers=patient)
    signed = document is not None and document.ok and client.send(
        "POST", f"/v1/patients/{patient_id}/consents", {"document_version": document.json()["version"]},
        headers=patient, idempotency_key=f"consent-{uuid.uuid4().hex}")
    reviews = signed and client.send("GET", "/v1/reviews", headers=admin, params={"patient_id": patient_id})
    if not reviews or not reviews.ok or not reviews.json()["items"]:
        journal.count("unsettled", "clearance before the review")
        return None
    review_id = reviews.json()["items"][0]["id"]
    decided = client.send("POST", f"/v1/reviews/{review_id}/decision", {"decision": "approve", "plan": STANDARD_PLAN},
                          headers=admin, idempotency_key=f"decide-{review_id}")
    if decided is None or decided.status_code not in (200, 201, 409):  # 409: decided by an earlier attempt
        return None
    return signed.json()["id"]


def register_and_book(client: Client, journal: Journal) -> None:
    """A patient signs up, is screened and cleared, then books a home visit at a popular time (bookings collide)."""
    n = next(_numbers)
    key = f"register-{uuid.uuid4().hex}"
    registered = client.send("POST", "/v1/patients", a_patient(n), idempotency_key=key)
    if registered is None:
        journal.count("unsettled", "registration")
        return
    if registered.status_code != 201:
        journal.count("refused", f"registration {registered.status_code}")
        return
    patient_id = registered.json()["id"]
    journal.accept("registration", {"id": patient_id, "key": key})
    consent_id = clear(client, journal, patient_id)
    if consent_id is None:
        return

    day = datetime.now(UTC).date() + timedelta(days=random.randint(3, 30))
    start_at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=random.choice([17, 18, 19, 20]))
    booking = {"patient_id": patient_id, "visit_type": "iv-mood", "start_at": start_at.isoformat()}
    key = f"book-{uuid.uuid4().hex}"
    booked = client.send("POST", "/v1/appointments", booking, headers=client.token("patient", patient_id),
                         idempotency_key=key)
    if booked is None:
        journal.count("unsettled", "booking")
    elif booked.status_code == 201:
        journal.accept("booking", {"id": booked.json()["id"], "key": key, "patient_id": patient_id})
    else:
        journal.count("refused", f"booking {booked.status_code} {booked.json().get('code')}")
    if random.random() < 0.25:  # a patient withdraws consent: their future infusions must be cancelled
        revoked = client.send("DELETE", f"/v1/patients/{patient_id}/consents/{consent_id}",
                              headers=client.token("patient", patient_id), idempotency_key=f"revoke-{consent_id}")
        if revoked is not None and revoked.ok:
            journal.accept("consent revoked", {"patient_id": patient_id})
        else:
            journal.count("unsettled" if revoked is None else "refused", "consent revocation")


def book_before_clearance(client: Client, journal: Journal) -> None:
    """A patient signs up and tries to book an infusion before being screened and approved: always refused."""
    n = next(_numbers)
    registered = client.send("POST", "/v1/patients", a_patient(n), idempotency_key=f"register-{uuid.uuid4().hex}")
    if registered is None or registered.status_code != 201:
        journal.count("unsettled" if registered is None else "refused", "registration before clearance")
        return
    patient_id = registered.json()["id"]
    journal.accept("registration", {"id": patient_id})
    start_at = datetime.combine(datetime.now(UTC).date() + timedelta(days=random.randint(3, 30)),
                                datetime.min.time(), UTC) + timedelta(hours=18)
    booked = client.send("POST", "/v1/appointments", {"patient_id": patient_id, "visit_type": "iv-mood",
                                                      "start_at": start_at.isoformat()},
                         headers=client.token("patient", patient_id), idempotency_key=f"book-{uuid.uuid4().hex}")
    if booked is not None and booked.status_code == 201:
        journal.accept("booking before clearance", {"id": booked.json()["id"], "patient_id": patient_id})
    elif booked is not None:
        journal.count("refused", f"uncleared booking {booked.status_code} {booked.json().get('code')}")


#: Every flow the load runs; the service issues add theirs (holds and deposits, visits, reminders, ...).
FLOWS: list[Callable[[Client, Journal], None]] = [register_and_book, register_and_book, book_before_clearance]
