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
                 give_up_after: float = 90, stripe_base: str | None = None) -> None:
        self.gateways = gateways
        self.stripe_base = stripe_base
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

    def pass_3d_secure(self, deposit: dict[str, Any]) -> bool:
        """What Stripe.js does when the patient passes the card's challenge (at the Stripe stand-in)."""
        for _ in range(5):
            try:
                answer = self.http.post(
                    f"{self.stripe_base}/v1/payment_intents/{deposit['payment_intent_id']}/_authenticate", timeout=15,
                    data={"client_secret": deposit["client_secret"], "success": "true", "key": "pk_test_chaos"})
                if answer.ok:
                    return True
            except requests.RequestException:
                pass
            time.sleep(1)
        return False


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


def sign_up(client: Client, journal: Journal, what: str = "registration") -> str | None:
    """A new patient signs up on the website: their id, or None (counted as refused or unsettled)."""
    key = f"register-{uuid.uuid4().hex}"
    registered = client.send("POST", "/v1/patients", a_patient(next(_numbers)), idempotency_key=key)
    if not settled(journal, what, registered, 201):
        return None
    patient_id = registered.json()["id"]
    journal.accept("registration", {"id": patient_id, "key": key})
    return patient_id


def a_day_ahead_at(hour_utc: int) -> datetime:
    """An instant 3 to 30 days from now, at a whole UTC hour."""
    day = datetime.now(UTC).date() + timedelta(days=random.randint(3, 30))
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hour_utc)


def sign_up_and_clear(client: Client, journal: Journal) -> tuple[str, str] | None:
    """A patient signs up and is screened, consents and is approved: (patient id, consent id), or None."""
    patient_id = sign_up(client, journal)
    if patient_id is None:
        return None
    consent_id = clear(client, journal, patient_id)
    return None if consent_id is None else (patient_id, consent_id)


def buy_a_package(client: Client, journal: Journal, patient_id: str) -> None:
    """The patient pays for the 6-visit induction package up front (one key: one purchase, whatever the retries)."""
    bought = client.send("POST", f"/v1/patients/{patient_id}/packages",
                         {"package": "induction-6", "payment_method_id": "pm_card_visa"},
                         headers=client.token("patient", patient_id), idempotency_key=f"package-{patient_id}")
    if settled(journal, "package", bought, 201):
        journal.accept("package", {"id": bought.json()["purchase_id"], "patient_id": patient_id})


def register_and_book(client: Client, journal: Journal) -> None:
    """A patient signs up, is screened and cleared, then books a home visit at a popular time (bookings collide);
    now and then after buying a package, which the visit then draws on."""
    cleared = sign_up_and_clear(client, journal)
    if cleared is None:
        return
    patient_id, consent_id = cleared
    if random.random() < 0.3:
        buy_a_package(client, journal, patient_id)
    start_at = a_day_ahead_at(random.choice([17, 18, 19, 20]))
    booking = {"patient_id": patient_id, "visit_type": "iv-mood", "start_at": start_at.isoformat()}
    key = f"book-{uuid.uuid4().hex}"
    booked = client.send("POST", "/v1/appointments", booking, headers=client.token("patient", patient_id),
                         idempotency_key=key)
    if booked is None:
        journal.count("unsettled", "booking")
    elif booked.status_code == 201:
        journal.accept("booking", {"id": booked.json()["id"], "key": key, "patient_id": patient_id})
    else:
        journal.count("refused", f"booking {booked.status_code} {problem_code(booked)}")
    if random.random() < 0.25:  # a patient withdraws consent: their future infusions must be cancelled
        revoked = client.send("DELETE", f"/v1/patients/{patient_id}/consents/{consent_id}",
                              headers=client.token("patient", patient_id), idempotency_key=f"revoke-{consent_id}")
        if revoked is not None and revoked.ok:
            journal.accept("consent revoked", {"patient_id": patient_id})
        else:
            journal.count("unsettled" if revoked is None else "refused", "consent revocation")


def book_a_series(client: Client, journal: Journal) -> None:
    """A cleared patient books two sessions of the series their clearance planned at once (all or nothing), at
    times the availability search offers three and five days ahead."""
    cleared = sign_up_and_clear(client, journal)
    if cleared is None:
        return
    patient_id, _ = cleared
    patient = client.token("patient", patient_id)

    def planned() -> list[dict[str, Any]]:
        shown = client.send("GET", f"/v1/patients/{patient_id}/series", headers=patient)
        return shown.json()["items"] if shown is not None and shown.ok else []

    series = until(30, planned)
    starts = [free_start(client, patient_id, days_ahead) for days_ahead in (3, 5)]
    if not series or None in starts:
        journal.count("refused", "series: no series planned or no free time offered")
        return
    booked = client.send("POST", f"/v1/patients/{patient_id}/series/{series[0]['id']}/bookings",
                         {"start_ats": starts}, headers=patient, idempotency_key=f"series-{patient_id}")
    if settled(journal, "series booking", booked, 201):
        journal.accept("series booking", {"id": booked.json()["id"], "patient_id": patient_id,
                                          "appointments": [a["id"] for a in booked.json()["appointments"]]})


def book_before_clearance(client: Client, journal: Journal) -> None:
    """A patient signs up and tries to book an infusion before being screened and approved: always refused."""
    patient_id = sign_up(client, journal, "registration before clearance")
    if patient_id is None:
        return
    start_at = a_day_ahead_at(18)
    booked = client.send("POST", "/v1/appointments", {"patient_id": patient_id, "visit_type": "iv-mood",
                                                      "start_at": start_at.isoformat()},
                         headers=client.token("patient", patient_id), idempotency_key=f"book-{uuid.uuid4().hex}")
    if booked is not None and booked.status_code == 201:
        journal.accept("booking before clearance", {"id": booked.json()["id"], "patient_id": patient_id})
    elif booked is not None:
        journal.count("refused", f"uncleared booking {booked.status_code} {problem_code(booked)}")


def risk_answer_then_a_clinician(client: Client, journal: Journal) -> None:
    """A patient answers a suicide-risk item: the answer brings crisis resources, an urgent review opens, and
    every infusion is refused until a clinician (here an admin) decides: approve (after the rest of the file)
    or decline. No program may decide such a patient. Half of them bought a package meanwhile."""
    patient_id = sign_up(client, journal, "registration (risk)")
    if patient_id is None:
        return
    patient, admin = client.token("patient", patient_id), client.token("admin", "chaos-clinic")
    answers = {**UNREMARKABLE_ANSWERS["phq-9"], "phq9_9": 1}
    screened = client.send("POST", f"/v1/patients/{patient_id}/screenings", {"instrument": "phq-9", "answers": answers},
                           headers=patient, idempotency_key=f"screen-{uuid.uuid4().hex}")
    if not settled(journal, "risk screening", screened, 201):
        return
    journal.accept("risk answer", {"patient_id": patient_id,
                                   "crisis_resources": bool(screened.json().get("crisis_resources"))})
    if random.random() < 0.5:  # paid before the decision: a decline refunds it less the retention
        buy_a_package(client, journal, patient_id)
    booked = client.send("POST", "/v1/appointments", {"patient_id": patient_id, "visit_type": "iv-mood",
                                                      "start_at": a_day_ahead_at(18).isoformat()},
                         headers=patient, idempotency_key=f"book-{uuid.uuid4().hex}")
    if booked is not None and booked.status_code == 201:
        journal.accept("booking during an urgent review", {"id": booked.json()["id"], "patient_id": patient_id})
    elif booked is not None:
        journal.count("refused", f"booking during an urgent review {booked.status_code} {problem_code(booked)}")
    if random.random() < 0.5:
        if clear(client, journal, patient_id) is not None:  # the rest of the file, and the clinician approves
            journal.accept("urgent review approved", {"patient_id": patient_id})
        return
    reviews = client.send("GET", "/v1/reviews", headers=admin, params={"patient_id": patient_id})
    items = reviews.json()["items"] if reviews is not None and reviews.ok else []
    if not items:
        journal.count("unsettled", "urgent review not listed")
        return
    declined = client.send("POST", f"/v1/reviews/{items[0]['id']}/decision",
                           {"decision": "decline", "reason_code": "suicide_risk_needs_other_care"}, headers=admin,
                           idempotency_key=f"decide-{items[0]['id']}")
    if settled(journal, "urgent review declined", declined, 200, 201):
        journal.accept("urgent review declined", {"patient_id": patient_id})


GOOD_VITALS = {"systolic": 124, "diastolic": 80, "heart_rate": 72, "spo2": 98}
PRE_CHECKS = {"fasting_hours": 6, "escort_present": True, "consent_reconfirmed": True, "pregnancy_possible": False,
              "weight_kg": 70, "baseline": GOOD_VITALS}


def until(seconds: float, answer: Callable[[], Any]) -> Any:
    """The first truthy ``answer()`` within ``seconds`` (None after that)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        found = answer()
        if found:
            return found
        time.sleep(0.5)
    return None


def free_start(client: Client, patient_id: str, days_ahead: int) -> str | None:
    """A start time the availability search offers the patient on one local date (picked at random)."""
    day = (datetime.now(UTC).date() + timedelta(days=days_ahead)).isoformat()
    answer = client.send("GET", "/v1/availability", headers=client.token("patient", patient_id),
                         params={"patient_id": patient_id, "visit_type": "iv-mood", "from": day, "to": day})
    slots = answer.json()["slots"] if answer is not None and answer.ok else []
    return random.choice(slots)["start_at"] if slots else None


def settled(journal: Journal, what: str, answer: requests.Response | None, *ok: int) -> bool:
    """Whether the answer is one of ``ok``; otherwise it is counted as refused (with its code) or unsettled."""
    if answer is not None and answer.status_code in ok:
        return True
    if answer is None:
        journal.count("unsettled", what)
    else:
        journal.count("refused", f"{what} {answer.status_code} {problem_code(answer)}")
    return False


def problem_code(answer: requests.Response) -> str | None:
    try:
        return answer.json().get("code")
    except ValueError:
        return None


def hold_pay_and_see_it_through(client: Client, journal: Journal) -> None:
    """A cleared patient finds a free time, holds it and pays the deposit (now and then through 3-D Secure,
    finished as Stripe.js finishes it: the payment then reaches billing only by webhook). Once the hold is
    booked the visit is moved, cancelled, or given: the nurse records every step up to the discharge (billing
    then charges the balance off-session), or aborts at the pre-dose checks (the patient had eaten)."""
    cleared = sign_up_and_clear(client, journal)
    if cleared is None:
        return
    patient_id, _ = cleared
    patient = client.token("patient", patient_id)
    start_at = free_start(client, patient_id, random.randint(3, 30))
    if start_at is None:
        journal.count("refused", "hold: no free time offered")
        return
    held = client.send("POST", "/v1/holds", {"patient_id": patient_id, "visit_type": "iv-mood", "start_at": start_at},
                       headers=patient, idempotency_key=f"hold-{patient_id}")
    if not settled(journal, "hold", held, 201):
        return
    hold = held.json()
    journal.accept("hold", {"id": hold["id"], "patient_id": patient_id})
    card = "pm_card_threeDSecure2Required" if random.random() < 0.2 else "pm_card_visa"
    paid = client.send("POST", f"/v1/holds/{hold['id']}/deposit", {"payment_method_id": card}, headers=patient,
                       idempotency_key=f"deposit-{hold['id']}")
    if not settled(journal, "deposit", paid, 200):
        return
    deposit = paid.json()
    if deposit["status"] == "requires_action" and not client.pass_3d_secure(deposit):
        journal.count("unsettled", "3-D Secure challenge")
        return
    journal.accept("deposit", {"hold_id": hold["id"], "patient_id": patient_id, "card": card})

    def hold_settled() -> dict[str, Any] | None:
        shown = client.send("GET", f"/v1/holds/{hold['id']}", headers=patient)
        found = shown.json() if shown is not None and shown.ok else {}
        return found if found.get("status") in ("booked", "failed") else None

    booked = until(60, hold_settled)
    if booked is None or booked["status"] != "booked":
        journal.count("unsettled" if booked is None else "refused", f"paid hold {booked and booked['status']}")
        return
    appointment_id = booked["appointment_id"]
    journal.accept("paid booking", {"id": appointment_id, "hold_id": hold["id"], "patient_id": patient_id})
    then = random.choices([reschedule, cancel, visit, visit_aborted], weights=[3, 2, 4, 1])[0]
    then(client, journal, patient_id, booked)


def reschedule(client: Client, journal: Journal, patient_id: str, booked: dict[str, Any]) -> None:
    start_at = free_start(client, patient_id, random.randint(3, 30))
    if start_at is None:
        journal.count("refused", "reschedule: no free time offered")
        return
    moved = client.send("POST", f"/v1/appointments/{booked['appointment_id']}/reschedule", {"start_at": start_at},
                        headers=client.token("patient", patient_id), idempotency_key=f"move-{uuid.uuid4().hex}")
    if settled(journal, "reschedule", moved, 200):
        journal.accept("reschedule", {"id": booked["appointment_id"], "start_at": start_at})


def cancel(client: Client, journal: Journal, patient_id: str, booked: dict[str, Any]) -> None:
    cancelled = client.send("POST", f"/v1/appointments/{booked['appointment_id']}/cancel",
                            {"reason": "plans changed"}, headers=client.token("patient", patient_id),
                            idempotency_key=f"cancel-{booked['appointment_id']}")
    if settled(journal, "cancellation", cancelled, 200):
        journal.accept("cancellation", {"id": booked["appointment_id"]})


def visit(client: Client, journal: Journal, patient_id: str, booked: dict[str, Any], abort: bool = False) -> None:
    """The assigned nurse records the visit step by step, each request retried with its own key."""
    nurse = client.token("nurse", booked["nurse_id"])
    now = datetime.now(UTC)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("en_route", {"arrival_from": now.isoformat(), "arrival_to": (now + timedelta(minutes=30)).isoformat()}),
        ("arrived", {}), ("pre_checks", {"pre_checks": {**PRE_CHECKS, "fasting_hours": 2 if abort else 6}})]
    if not abort:
        steps += [("started", {}), ("completed", {"infusion_minutes": random.choice([40, 45, 55])}),
                  ("discharged", {"escort_present": True, "post_care_instructions_given": True})]
    for step, fields in steps:
        answer = client.send("POST", f"/v1/visits/{booked['appointment_id']}/events", {"step": step, **fields},
                             headers=nurse, idempotency_key=f"visit-{booked['appointment_id']}-{step}")
        if answer is not None and answer.status_code == 409 and problem_code(answer) == "illegal_visit_step":
            # the visit is past this step already: an earlier try of this very request was recorded, its
            # answer lost, and the key's lease ran out before the retry (the nurse's app reloads and goes on)
            journal.count("refused", f"visit step {step} 409 (already recorded)")
            continue
        if not settled(journal, f"visit step {step}", answer, 200):
            return
    journal.accept("visit aborted" if abort else "visit given", {"id": booked["appointment_id"]})


def visit_aborted(client: Client, journal: Journal, patient_id: str, booked: dict[str, Any]) -> None:
    visit(client, journal, patient_id, booked, abort=True)


#: Every flow the load runs; the service issues add theirs (holds and deposits, visits, reminders, ...).
FLOWS: list[Callable[[Client, Journal], None]] = [register_and_book, hold_pay_and_see_it_through,
                                                  hold_pay_and_see_it_through, book_before_clearance,
                                                  risk_answer_then_a_clinician, book_a_series]
