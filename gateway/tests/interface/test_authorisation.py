"""Who may call what, and whose records they reach, checked over HTTP against the running platform.

The role matrix is driven by the OpenAPI document the gateway serves (``GET /openapi.json``), not by the
Python route table: every operation is called by every role and without a token, with path parameters
filled with real ids made in setup and valid bodies. A new operation cannot escape it: an operation with
a path parameter or a body this module does not know how to fill fails the matrix, and every route the
gateway serves must be in the document.

Object-level access: a patient reaches only their own records, a nurse only the visits assigned to them, a
clinician only the patients in their care.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.utils import get_container
from nameko.web.handlers import HttpRequestHandler

from chassis.testing import wait_for
from gateway.endpoints import ROUTES
from gateway.service import GatewayService
from gateway.signatures import twilio_signature
from gateway.tests.interface.support import Platform, as_json, assert_problem, bearer, registration
from services.scheduling.tests.examples import EVERY_DAY, nurse_record

ROLES = ("patient", "clinician", "nurse", "finance", "admin")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
WEBHOOK_SECRET = "whsec_matrix_secret"
CLINICIAN = "clinician-1"


@pytest.fixture(scope="module")
def gateway_settings():
    """A signing secret for every signature-authenticated route, should the API have any."""
    return {"WEBHOOK_SECRETS": {route.operation_id: WEBHOOK_SECRET for route in ROUTES if route.auth == "signature"}}


@dataclass(frozen=True)
class World:
    """Real records: two patients, each with a visit (assigned to different nurses) and its invoice."""

    patient_a: str
    patient_b: str
    nurse_a: str  # assigned to A's visit
    nurse_b: str  # assigned to B's visit
    appointment_a: str
    appointment_b: str
    invoice_a: str
    invoice_b: str
    hold_a: str
    review_a: str  # the clinician review that cleared A


@pytest.fixture(scope="module")
def world(platform: Platform) -> World:
    nurse_a, nurse_b = platform.add_nurse(nurse_id="nur_alpha"), platform.add_nurse(nurse_id="nur_beta")
    patient_a, patient_b = platform.register(), platform.register(first_name="Blair")
    review_a = platform.clear(patient_a)["id"]
    appointment_a = platform.book(patient_a, nurse_id=nurse_a)
    appointment_b = platform.book(patient_b, nurse_id=nurse_b)
    assigned = platform.request("PUT", f"/v1/patients/{patient_a}/clinician", headers=bearer("admin", "admin-1"),
                                json={"clinician_id": CLINICIAN})  # A is in the care of the matrix's clinician
    assert assigned.status_code == 200, assigned.text
    assert (appointment_a["nurse_id"], appointment_b["nurse_id"]) == (nurse_a, nurse_b)
    invoice_a = platform.invoice_of(appointment_a["id"])["id"]
    paid_for(platform, patient_a, appointment_a["id"], invoice_a)
    held = platform.post("/v1/holds", headers=bearer("patient", patient_a),
                         json={"patient_id": patient_a, "visit_type": "iv-mood", "start_at": platform.times.next()})
    assert held.status_code == 201, held.text
    return World(patient_a, patient_b, nurse_a, nurse_b, appointment_a["id"], appointment_b["id"],
                 invoice_a, platform.invoice_of(appointment_b["id"])["id"], held.json()["id"], review_a)


def paid_for(platform: Platform, patient_id: str, appointment_id: str, invoice_id: str) -> None:
    """A's hold ``hld_matrix`` quoted (its deposit is for the matrix to pay), a card saved by an earlier hold's
    deposit, and A's visit given and paid, so that its invoice can be refunded."""
    expires_at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    with ClusterRpcProxy(platform.config) as rpc:
        for hold_id in ("hld_matrix", "hld_matrix_earlier"):
            rpc.billing.quote({"patient_id": patient_id, "visit_type": "iv-mood", "hold_id": hold_id,
                               "expires_at": expires_at})
        rpc.billing.pay_deposit("hld_matrix_earlier", "pm_card_visa")
    event = {"event_id": f"evt_matrix_{appointment_id}", "type": "visit.completed", "version": 1,
             "occurred_at": datetime.now(UTC).isoformat(), "correlation_id": "matrix", "producer": "scheduling",
             "payload": {"appointment_id": appointment_id, "patient_id": patient_id, "visit_type": "iv-mood",
                         "infusion_minutes": 45, "completed_at": datetime.now(UTC).isoformat()}}
    event_dispatcher(platform.config)("scheduling", "visit.completed", event)
    wait_for(lambda: platform.db("billing").invoices.find_one({"_id": invoice_id, "status": "settled"}))


@pytest.fixture(scope="module")
def openapi(platform: Platform) -> dict[str, Any]:
    response = platform.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation) for path, item in document["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS]


def scheme(operation: dict[str, Any]) -> str:
    """How an operation authenticates, from its ``security``: none, bearer or signature."""
    names = {name for requirement in operation.get("security") or [] for name in requirement}
    known = {frozenset(): "none", frozenset({"bearerAuth"}): "bearer", frozenset({"webhookSignature"}): "signature",
             frozenset({"twilioSignature"}): "signature"}
    return known.get(frozenset(names), f"unknown security {sorted(names)}: teach this matrix how to call it")


def stripe_signature(body: bytes) -> str:
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def subject_of(role: str, world: World) -> str:
    """A patient's subject is their patient id, a nurse's their nurse id (A's, whose visit is in the path)."""
    return {"patient": world.patient_a, "nurse": world.nurse_a, "clinician": CLINICIAN}.get(role, f"{role}-1")


def path_values(world: World) -> dict[str, str]:
    return {"patient_id": world.patient_a, "appointment_id": world.appointment_a, "invoice_id": world.invoice_a,
            "nurse_id": world.nurse_a, "hold_id": world.hold_a, "asset": "docs.css", "review_id": world.review_a,
            "kind": "payments"}


def sign_consent(platform: Platform, patient_id: str) -> str:
    """The patient signs the current consent document; the consent's id."""
    version = platform.get("/v1/consent-documents/current").json()["version"]
    signed = platform.post(f"/v1/patients/{patient_id}/consents", headers=bearer("patient", patient_id),
                           json={"document_version": version})
    assert signed.status_code == 201, signed.text
    return signed.json()["id"]


def fresh_path_values(operation_id: str, platform: Platform, world: World) -> dict[str, str]:
    """Operations that use up their record get a fresh one per call: a consent of A's to revoke, an open review of
    a patient in the matrix clinician's care to decide."""
    admin = bearer("admin", "admin-1")
    if operation_id == "bookSeriesSessions":
        return {"series_id": series_of(platform, world)["id"]}
    if operation_id == "revokeConsent":
        return {"consent_id": sign_consent(platform, world.patient_a)}
    if operation_id == "decideReview":
        patient = platform.register()
        platform.request("PUT", f"/v1/patients/{patient}/clinician", headers=admin, json={"clinician_id": CLINICIAN})
        platform.post(f"/v1/patients/{patient}/screenings", headers=bearer("patient", patient),
                      json={"instrument": "risk-screen", "answers": {f"risk_{n}": int(n == 1) for n in range(1, 7)}})
        return {"review_id": platform.get("/v1/reviews", headers=admin,
                                          params={"patient_id": patient}).json()["items"][0]["id"]}
    return {}


def booking_body(platform: Platform, world: World) -> dict[str, Any]:
    """A booking of A's at a fresh time, A's consent signed again first (the matrix's revokeConsent withdraws it)."""
    sign_consent(platform, world.patient_a)
    return {"patient_id": world.patient_a, "visit_type": "iv-mood", "start_at": platform.times.next()}


def series_of(platform: Platform, world: World) -> dict[str, Any]:
    """The treatment series A's clearance planned (scheduling plans it on ``patient.cleared``)."""
    admin = bearer("admin", "admin-1")
    return wait_for(lambda: platform.get(f"/v1/patients/{world.patient_a}/series", headers=admin).json()["items"])[0]


def series_sessions_body(platform: Platform, world: World) -> dict[str, Any]:
    """The next session of A's series at 17:00 in Denver, a time ``VisitTimes`` never gives, on a day of its own
    from the first allowed one (at least two days ahead): a 15:00 visit of A's nurse that day would still be on at
    17:00. A's consent is signed again first (the matrix's revokeConsent withdraws it)."""
    sign_consent(platform, world.patient_a)
    zone = ZoneInfo("America/Denver")
    day = platform.times.reserve_day(max(datetime.fromisoformat(series_of(platform, world)["next"]["from"]).date(),
                                         datetime.now(zone).date() + timedelta(days=2)))
    return {"start_ats": [datetime.combine(day, dt_time(17, 0), tzinfo=zone).astimezone(UTC).isoformat()]}


def fresh_visit(platform: Platform, world: World, checked: bool = False) -> str:
    """A new visit of A's with A's nurse, booked by staff; ``checked``: recorded up to passed pre-checks. A's
    consent is signed again first (the matrix's revokeConsent withdraws it)."""
    admin = bearer("admin", "admin-1")
    sign_consent(platform, world.patient_a)
    booked = platform.post("/v1/appointments", headers=admin, json={
        "patient_id": world.patient_a, "visit_type": "iv-mood", "start_at": platform.times.next(),
        "nurse_id": world.nurse_a})
    assert booked.status_code == 201, booked.text
    visit_id = booked.json()["id"]
    steps = [VISIT_STEP_EN_ROUTE, {"step": "arrived"}, {"step": "pre_checks", "pre_checks": PRE_CHECKS}]
    for step in steps if checked else ():
        recorded = platform.post(f"/v1/visits/{visit_id}/events", headers=admin, json=step)
        assert recorded.status_code == 200, recorded.text
    return visit_id


VITALS = {"systolic": 128, "diastolic": 82, "heart_rate": 76, "spo2": 98}
PRE_CHECKS = {"fasting_hours": 6, "escort_present": True, "consent_reconfirmed": True, "pregnancy_possible": False,
              "weight_kg": 70, "baseline": VITALS}
VISIT_STEP_EN_ROUTE = {"step": "en_route", "arrival_from": "2026-12-01T16:00:00Z", "arrival_to": "2026-12-01T16:30:00Z"}


def week_ahead() -> str:
    return str(datetime.now(UTC).date() + timedelta(days=7))


def example_query(operation_id: str, platform: Platform, world: World) -> dict[str, str]:
    """The query parameters an operation requires (real ids, dates a week ahead)."""
    if operation_id == "getAvailability":  # A's consent signed again (the matrix's revokeConsent withdraws it)
        sign_consent(platform, world.patient_a)
        return {"patient_id": world.patient_a, "visit_type": "iv-mood", "from": week_ahead(), "to": week_ahead()}
    queries = {
        "getNurseSchedule": {"date": week_ahead()},
        "listControlledSubstances": {"from": "2026-01-01", "to": "2026-12-31"},
    }
    return queries.get(operation_id, {})


def example_body(operation_id: str, platform: Platform, world: World) -> dict[str, Any] | None:
    """A valid body for each operation that takes one (a fresh visit time for each booking)."""
    bodies = {
        "registerPatient": lambda: registration(),
        "bookAppointment": lambda: booking_body(platform, world),
        "placeHold": lambda: booking_body(platform, world),
        "bookSeriesSessions": lambda: series_sessions_body(platform, world),
        "putNurse": lambda: nurse_record(f"Nurse {world.nurse_a}"),
        "assignClinician": lambda: {"clinician_id": CLINICIAN},
        "putNotificationPreferences": lambda: {"sms": {"reminders": True}},
        "updatePatient": lambda: {"phone": "+13035550199"},
        "submitScreening": lambda: {"instrument": "gad-7", "answers": {f"gad7_{n}": 1 for n in range(1, 8)}},
        "recordReferral": lambda: {"clinician_name": "Dr. Matrix", "npi": "1234567893", "icd10_codes": ["F33.1"],
                                   "document_reference": "doc-matrix"},
        "signConsent": lambda: {"document_version": platform.get("/v1/consent-documents/current").json()["version"]},
        "decideReview": lambda: {"decision": "decline", "reason_code": "clinical_judgement"},
        "rescheduleAppointment": lambda: {"start_at": platform.times.next()},
        "cancelAppointment": lambda: {"reason": "the matrix cancels it"},
        "joinWaitlist": lambda: {"patient_id": world.patient_a, "visit_type": "iv-mood",
                                 "from": week_ahead(), "to": week_ahead()},
        "recordVisitStep": lambda: VISIT_STEP_EN_ROUTE,
        "recordVitals": lambda: VITALS,
        "recordMedication": lambda: {"kind": "drawn", "lot_number": "KET-1", "amount_mg": "50"},
        "putNurseHours": lambda: {"weekly_hours": EVERY_DAY, "exceptions": []},
        "createQuote": lambda: {"visit_type": "iv-mood", "postal_code": "80202"},
        "payDeposit": lambda: {"payment_method_id": "pm_card_visa"},
        "buyPackage": lambda: {"package": "induction-6", "payment_method_id": "pm_card_visa"},
        "refundInvoice": lambda: {"amount_cents": 100, "currency": "usd", "reason": "matrix test"},
    }
    return bodies[operation_id]() if operation_id in bodies else None


def call(platform: Platform, world: World, method: str, path: str, operation: dict[str, Any],
         headers: dict[str, str], signed: bool = False, role: str | None = None) -> Any:
    """Call one operation of the document with real ids and a valid body; a string says what is missing."""
    values = {**path_values(world), **fresh_path_values(operation.get("operationId", ""), platform, world)}
    if role in operation.get("x-roles", ()):  # a call that gets through changes a fresh visit
        if operation["operationId"] in ("rescheduleAppointment", "cancelAppointment", "recordVisitStep"):
            values["appointment_id"] = values["visit_id"] = fresh_visit(platform, world)
        if operation["operationId"] in ("recordVitals", "recordMedication"):
            values["visit_id"] = fresh_visit(platform, world, checked=True)
    values.setdefault("visit_id", world.appointment_a)
    missing = [name for name in re.findall(r"\{(\w+)\}", path) if name not in values]
    if missing:
        return f"no value for path parameters {missing}: add one to path_values()"
    if scheme(operation).startswith("unknown"):
        return scheme(operation)
    body = None
    if "requestBody" in operation:
        body = example_body(operation["operationId"], platform, world)
        if body is None:
            return "takes a body but example_body() has none for it"
    elif scheme(operation) == "signature":
        body = {"id": "evt_matrix", "type": "matrix.test"}
    if "twilioSignature" in str(operation.get("security")):  # Twilio posts a form, signed over URL and fields
        form = {"From": "+13035550111", "To": "+13035550000", "Body": "HELP", "MessageSid": "SM_matrix"}
        headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        if signed:
            headers["X-Twilio-Signature"] = twilio_signature(platform.url + path.format(**values), form,
                                                             WEBHOOK_SECRET)
        return platform.request(method, path.format(**values), headers=headers, data=urlencode(form))
    data = json.dumps(body).encode() if body is not None else None
    headers = {**headers, **({"Content-Type": "application/json"} if data is not None else {})}
    if signed:
        headers["Stripe-Signature"] = stripe_signature(data or b"")
    return platform.request(method, path.format(**values), headers=headers, data=data,
                            params=example_query(operation["operationId"], platform, world))


@pytest.mark.parametrize("role", ROLES)
def test_a_role_gets_403_where_not_listed_in_x_roles_and_through_where_listed(platform, world, openapi, role):
    headers = bearer(role, subject_of(role, world))
    wrong = []
    for method, path, operation in operations(openapi):
        response = call(platform, world, method, path, operation, headers, role=role)
        label = f"{method} {path} as {role}"
        if isinstance(response, str):
            wrong.append(f"{label}: {response}")
        elif scheme(operation) == "signature":
            if response.status_code != 401:  # a bearer token, even an admin's, is not a signature
                wrong.append(f"{label}: signature route, expected 401, got {response.status_code} {as_json(response)}")
        elif scheme(operation) == "bearer" and role not in operation["x-roles"]:
            if response.status_code != 403 or response.json().get("code") != "forbidden":
                wrong.append(f"{label}: not listed in x-roles, expected 403 forbidden, got "
                             f"{response.status_code} {as_json(response)}")
        elif not 200 <= response.status_code < 300:
            # Listed (or public): never refused; with real ids and valid bodies it succeeds.
            wrong.append(f"{label}: listed, expected 2xx, got {response.status_code} {as_json(response)}")
    assert not wrong, "\n".join(wrong)


def test_no_token_gets_401_on_every_bearer_operation_and_public_ones_answer(platform, world, openapi):
    wrong = []
    for method, path, operation in operations(openapi):
        response = call(platform, world, method, path, operation, {})
        label = f"{method} {path} without a token"
        if isinstance(response, str):
            wrong.append(f"{label}: {response}")
        elif scheme(operation) == "bearer":
            if response.status_code != 401 or response.json().get("code") != "missing_token":
                wrong.append(f"{label}: expected 401 missing_token, got {response.status_code} {as_json(response)}")
            elif not response.headers.get("WWW-Authenticate", "").startswith("Bearer"):
                wrong.append(f"{label}: 401 without a Bearer WWW-Authenticate challenge")
        elif scheme(operation) == "signature":
            if response.status_code != 401:
                wrong.append(f"{label}: unsigned, expected 401, got {response.status_code} {as_json(response)}")
        elif not 200 <= response.status_code < 300:
            wrong.append(f"{label}: public, expected 2xx, got {response.status_code} {as_json(response)}")
    assert not wrong, "\n".join(wrong)


def test_a_correctly_signed_call_passes_every_signature_operation(platform, world, openapi):
    wrong = []
    for method, path, operation in operations(openapi):
        if scheme(operation) != "signature":
            continue
        response = call(platform, world, method, path, operation, {}, signed=True)
        if isinstance(response, str) or response.status_code in (401, 403) or response.status_code >= 500:
            wrong.append(f"{method} {path} signed: {response if isinstance(response, str) else as_json(response)}")
    assert not wrong, "\n".join(wrong)


def test_every_bearer_operation_in_the_document_names_its_roles(openapi):
    for method, path, operation in operations(openapi):
        assert not scheme(operation).startswith("unknown"), (method, path, scheme(operation))
        if scheme(operation) == "bearer":
            assert operation.get("x-roles"), f"{method} {path} has bearer security but no x-roles"
            assert set(operation["x-roles"]) <= set(ROLES), (method, path, operation["x-roles"])


def test_every_route_of_the_route_table_is_in_the_openapi_document(openapi):
    documented = {(method, path) for method, path, _ in operations(openapi)}
    missing = [(route.method, route.path) for route in ROUTES if (route.method, route.path) not in documented]
    assert not missing, f"routes missing from /openapi.json: {missing}"


def test_every_http_entrypoint_the_gateway_serves_is_in_the_openapi_document(platform, openapi):
    """Also a handler added beside the route table (a plain ``@http``) cannot escape the matrix."""
    documented = {(method, path) for method, path, _ in operations(openapi)}
    container = get_container(platform.runner, GatewayService)
    served = {(entrypoint.method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", entrypoint.url))
              for entrypoint in container.entrypoints if isinstance(entrypoint, HttpRequestHandler)}
    assert served, "no HTTP entrypoints found"
    assert served - documented == set()


# --- object-level access ------------------------------------------------------------------------------

# (rule, method, path template, body template): {own} is the caller's id, {their} the other patient's.
PATIENT_REQUESTS = [
    ("patient_record", "GET", "/v1/patients/{patient}", None),
    ("patient_notifications", "GET", "/v1/patients/{patient}/notifications", None),
    ("appointment", "GET", "/v1/appointments/{appointment}", None),
    ("invoice", "GET", "/v1/invoices/{invoice}", None),
    ("invoice_list_filtered_by_patient", "GET", "/v1/invoices?patient_id={patient}", None),
    ("appointment_list_filtered_by_patient", "GET", "/v1/appointments?patient_id={patient}", None),
    ("booking", "POST", "/v1/appointments", {"patient_id": "{patient}", "visit_type": "iv-mood"}),
]


def ids_of(world: World, whose: str) -> dict[str, str]:
    if whose == "a":
        return {"patient": world.patient_a, "appointment": world.appointment_a, "invoice": world.invoice_a}
    return {"patient": world.patient_b, "appointment": world.appointment_b, "invoice": world.invoice_b}


def send_as_patient_a(platform: Platform, world: World, method: str, template: str, body: Any, whose: str) -> Any:
    ids = ids_of(world, whose)
    json_body = None
    if body is not None:
        sign_consent(platform, world.patient_a)  # the matrix revoked A's consent (revokeConsent): A signs again
        json_body = {key: value.format(**ids) for key, value in body.items()} | {"start_at": platform.times.next()}
    return platform.request(method, template.format(**ids), headers=bearer("patient", world.patient_a),
                            json=json_body)


@pytest.mark.parametrize(("rule", "method", "template", "body"), PATIENT_REQUESTS, ids=[r[0] for r in PATIENT_REQUESTS])
def test_a_patient_is_refused_another_patients_records(platform, world, rule, method, template, body):
    response = send_as_patient_a(platform, world, method, template, body, whose="b")
    assert_problem(response, 403, "forbidden")
    assert world.patient_b not in response.text  # nothing of B's comes back


@pytest.mark.parametrize(("rule", "method", "template", "body"), PATIENT_REQUESTS, ids=[r[0] for r in PATIENT_REQUESTS])
def test_a_patient_reaches_their_own_records(platform, world, rule, method, template, body):
    response = send_as_patient_a(platform, world, method, template, body, whose="a")
    assert response.status_code in (200, 201), as_json(response)


def test_a_patient_booking_for_another_patient_creates_nothing(platform, world):
    appointments = platform.db("scheduling").appointments
    before = appointments.count_documents({"patient_id": world.patient_b})
    response = platform.post("/v1/appointments", headers=bearer("patient", world.patient_a),
                             json={"patient_id": world.patient_b, "visit_type": "iv-mood",
                                   "start_at": platform.times.next()})
    assert_problem(response, 403, "forbidden")
    assert appointments.count_documents({"patient_id": world.patient_b}) == before


@pytest.mark.parametrize("path", ["/v1/appointments", "/v1/invoices"])
def test_a_patient_listing_without_a_filter_sees_only_their_own(platform, world, path):
    response = platform.get(path, headers=bearer("patient", world.patient_a))
    assert response.status_code == 200
    items = response.json()["items"]
    assert items and {item["patient_id"] for item in items} == {world.patient_a}


def test_a_patient_filtering_invoices_by_another_patients_visit_gets_nothing(platform, world):
    response = platform.get("/v1/invoices", headers=bearer("patient", world.patient_a),
                            params={"appointment_id": world.appointment_b})
    assert response.status_code == 200
    assert response.json()["items"] == []


def test_a_patient_token_for_an_unregistered_id_reaches_nothing_of_others(platform, world):
    stranger = bearer("patient", "pat_stranger")
    for path in (f"/v1/patients/{world.patient_a}", f"/v1/appointments/{world.appointment_a}",
                 f"/v1/invoices/{world.invoice_a}"):
        assert_problem(platform.get(path, headers=stranger), 403, "forbidden")
    assert platform.get("/v1/appointments", headers=stranger).json()["items"] == []


def test_a_nurse_is_refused_a_visit_assigned_to_another_nurse(platform, world):
    response = platform.get(f"/v1/appointments/{world.appointment_b}", headers=bearer("nurse", world.nurse_a))
    assert_problem(response, 403, "forbidden")


def test_a_nurse_reads_a_visit_assigned_to_them(platform, world):
    response = platform.get(f"/v1/appointments/{world.appointment_a}", headers=bearer("nurse", world.nurse_a))
    assert response.status_code == 200
    assert response.json()["nurse_id"] == world.nurse_a


def test_a_nurse_is_refused_the_list_of_another_nurse(platform, world):
    response = platform.get("/v1/appointments", headers=bearer("nurse", world.nurse_a),
                            params={"nurse_id": world.nurse_b})
    assert_problem(response, 403, "forbidden")


def test_a_nurse_listing_visits_sees_only_those_assigned_to_them(platform, world):
    for params in ({}, {"nurse_id": world.nurse_a}, {"patient_id": world.patient_b}):
        response = platform.get("/v1/appointments", headers=bearer("nurse", world.nurse_a), params=params)
        assert response.status_code == 200, as_json(response)
        assert {item["nurse_id"] for item in response.json()["items"]} <= {world.nurse_a}, params
    mine, cursor = [], None
    while True:  # every page: the matrix has booked A's nurse many visits
        page = platform.get("/v1/appointments", headers=bearer("nurse", world.nurse_a),
                            params={"limit": 100, **({"cursor": cursor} if cursor else {})}).json()
        mine += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    assert world.appointment_a in {item["id"] for item in mine}


# --- clinicians: the patients in their care -------------------------------------------------------------

def test_a_clinician_reaches_the_patients_in_their_care_and_no_others(platform, world):
    clinician = bearer("clinician", CLINICIAN)
    assert platform.get(f"/v1/patients/{world.patient_a}", headers=clinician).json()["clinician_id"] == CLINICIAN
    assert platform.get(f"/v1/appointments/{world.appointment_a}", headers=clinician).status_code == 200
    assert_problem(platform.get(f"/v1/patients/{world.patient_b}", headers=clinician), 403, "forbidden")
    assert_problem(platform.get(f"/v1/appointments/{world.appointment_b}", headers=clinician), 403, "forbidden")
    assert_problem(platform.get("/v1/appointments", headers=clinician, params={"patient_id": world.patient_b}),
                   403, "forbidden")


def test_a_clinicians_appointment_list_holds_only_their_patients_visits(platform, world):
    listed = platform.get("/v1/appointments", headers=bearer("clinician", CLINICIAN), params={"limit": 100})
    assert listed.status_code == 200
    patients = {appointment["patient_id"] for appointment in listed.json()["items"]}
    assert patients == {world.patient_a}


def test_a_clinician_with_no_patients_sees_none(platform, world):
    listed = platform.get("/v1/appointments", headers=bearer("clinician", "clinician-without-patients"))
    assert listed.json() == {"items": [], "next_cursor": None}
    assert_problem(platform.get(f"/v1/patients/{world.patient_a}", headers=bearer("clinician", "clinician-2")),
                   403, "forbidden")
