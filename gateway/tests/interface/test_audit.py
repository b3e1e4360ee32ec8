"""The PHI audit trail over HTTP: every request touching health data writes exactly one entry (who, role,
what, which record, from where, with which request id, how it ended), refusals included; the log is read
by admins only, newest first, filtered and paginated, and no route changes or deletes it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo.errors import OperationFailure

from gateway.api import GatewayRuntime
from gateway.tests.interface.support import Platform, as_json, assert_problem, bearer, registration

ADMIN = bearer("admin", "auditor-1")
USER_AGENT = "audit-test-agent/1.0"


@dataclass(frozen=True)
class Records:
    patient: str
    other_patient: str
    appointment: str
    invoice: str


@pytest.fixture(scope="module")
def records(platform: Platform) -> Records:
    platform.add_nurse()
    patient, other = platform.register(), platform.register()
    appointment = platform.book(patient)["id"]
    return Records(patient, other, appointment, platform.invoice_of(appointment)["id"])


def entries_of(platform: Platform, request_id: str) -> list[dict]:
    return list(platform.db("gateway").audit_log.find({"request_id": request_id}))


def the_entry_of(platform: Platform, response) -> dict:
    """The one entry written for ``response`` (found by its X-Request-ID)."""
    found = entries_of(platform, response.headers["X-Request-ID"])
    assert len(found) == 1, found
    return found[0]


def send(platform: Platform, method: str, path: str, headers: dict, **kwargs):
    return platform.request(method, path, headers={**headers, "User-Agent": USER_AGENT,
                                                   "X-Request-ID": f"audit-{uuid.uuid4().hex}"}, **kwargs)


# (name, how the request is made from the records) -> expected (subject, role, action, resource, resource_id)
def cases(records: Records, platform: Platform) -> dict:
    patient = bearer("patient", records.patient)
    visit = {"patient_id": records.patient, "visit_type": "iv-mood", "start_at": platform.times.next()}
    return {
        "read_patient": (("GET", f"/v1/patients/{records.patient}", patient, {}),
                         (records.patient, "patient", "read", "patient", records.patient, 200)),
        "list_notifications": (("GET", f"/v1/patients/{records.patient}/notifications", patient, {}),
                               (records.patient, "patient", "list", "notification", records.patient, 200)),
        "book": (("POST", "/v1/appointments", patient, {"json": visit}),
                 (records.patient, "patient", "create", "appointment", "<created>", 201)),
        "read_appointment": (("GET", f"/v1/appointments/{records.appointment}", bearer("admin", "adm-7"), {}),
                             ("adm-7", "admin", "read", "appointment", records.appointment, 200)),
        "read_invoice": (("GET", f"/v1/invoices/{records.invoice}", bearer("finance", "fin-3"), {}),
                         ("fin-3", "finance", "read", "invoice", records.invoice, 200)),
        "list_invoices": (("GET", "/v1/invoices", patient, {}),
                          (records.patient, "patient", "list", "invoice", None, 200)),
        "list_appointments": (("GET", "/v1/appointments", bearer("nurse", "nur_x"), {}),
                              ("nur_x", "nurse", "list", "appointment", None, 200)),
        "register": (("POST", "/v1/patients", {}, {"json": registration()}),
                     ("anonymous", "anonymous", "create", "patient", "<created>", 201)),
        "denied_read": (("GET", f"/v1/patients/{records.other_patient}", patient, {}),
                        (records.patient, "patient", "read", "patient", records.other_patient, 403)),
        "denied_role": (("GET", f"/v1/invoices/{records.invoice}", bearer("nurse", "nur_y"), {}),
                        ("nur_y", "nurse", "read", "invoice", records.invoice, 403)),
        "not_found": (("GET", "/v1/appointments/apt_missing", bearer("admin", "ops-9"), {}),
                      ("ops-9", "admin", "read", "appointment", "apt_missing", 404)),
    }


CASES = ["read_patient", "list_notifications", "book", "read_appointment", "read_invoice", "list_invoices",
         "list_appointments", "register", "denied_read", "denied_role", "not_found"]


@pytest.mark.parametrize("name", CASES)
def test_a_request_touching_health_data_writes_one_complete_entry(platform, records, name):
    (method, path, headers, kwargs), expected = cases(records, platform)[name]
    response = send(platform, method, path, headers, **kwargs)
    subject, role, action, resource, resource_id, outcome = expected
    assert response.status_code == outcome, as_json(response)
    entry = the_entry_of(platform, response)
    if resource_id == "<created>":
        resource_id = response.json()["id"]
    assert {key: entry[key] for key in ("subject", "role", "action", "resource", "resource_id", "outcome")} == {
        "subject": subject, "role": role, "action": action, "resource": resource, "resource_id": resource_id,
        "outcome": outcome}
    assert entry["ip"] == "127.0.0.1"
    assert entry["user_agent"] == USER_AGENT
    assert entry["request_id"] == response.headers["X-Request-ID"]
    assert isinstance(entry["at"], datetime) and entry["at"].tzinfo is not None


def test_a_request_id_replaced_by_the_gateway_is_the_one_audited(platform, records):
    response = platform.get(f"/v1/patients/{records.patient}", headers={**ADMIN, "X-Request-ID": "bad id with spaces"})
    assert response.status_code == 200
    assert the_entry_of(platform, response)["request_id"] == response.headers["X-Request-ID"] != "bad id with spaces"


@pytest.mark.parametrize("path", ["/v1/nurses", "/health", "/openapi.json", "/v1/audit"])
def test_a_request_touching_no_health_data_writes_no_entry(platform, path):
    response = platform.get(path, headers=ADMIN)
    assert response.status_code == 200
    assert entries_of(platform, response.headers["X-Request-ID"]) == []


def test_an_unauthenticated_request_is_not_attributed_to_anyone(platform, records):
    response = platform.get(f"/v1/patients/{records.patient}", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401
    assert entries_of(platform, response.headers["X-Request-ID"]) == []


def test_a_replayed_booking_is_audited_with_the_appointment_it_discloses(platform, records):
    headers = {**bearer("patient", records.patient), "Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    body = {"patient_id": records.patient, "visit_type": "iv-mood", "start_at": platform.times.next()}
    first = platform.post("/v1/appointments", headers=headers, json=body)
    replay = platform.post("/v1/appointments", headers=headers, json=body)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert the_entry_of(platform, first)["resource_id"] == first.json()["id"]
    assert the_entry_of(platform, replay)["resource_id"] == replay.json()["id"]


# --- reading the log -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["patient", "clinician", "nurse", "finance"])
def test_only_admins_read_the_audit_log(platform, role):
    assert_problem(platform.get("/v1/audit", headers=bearer(role, "someone")), 403, "forbidden")
    assert_problem(platform.get("/v1/audit"), 401, "missing_token")


def reads_by(platform: Platform, subject: str, patient: str, count: int) -> list[str]:
    """``count`` audited reads by a fresh member of staff; their request ids, oldest first."""
    return [platform.get(f"/v1/patients/{patient}", headers=bearer("admin", subject)).headers["X-Request-ID"]
            for _ in range(count)]


def test_the_log_lists_newest_first(platform, records):
    subject = f"adm-{uuid.uuid4().hex[:8]}"
    request_ids = reads_by(platform, subject, records.patient, 3)
    items = platform.get("/v1/audit", headers=ADMIN, params={"subject": subject}).json()["items"]
    assert [item["request_id"] for item in items] == list(reversed(request_ids))
    times = [item["at"] for item in items]
    assert times == sorted(times, reverse=True)
    assert {"entry_id", "subject", "role", "action", "resource", "resource_id", "at", "ip", "user_agent",
            "request_id", "outcome"} <= set(items[0])


def test_the_log_filters_by_subject_resource_and_resource_id(platform, records):
    subject = f"adm-{uuid.uuid4().hex[:8]}"
    staff = bearer("admin", subject)
    platform.get(f"/v1/patients/{records.patient}", headers=staff)
    platform.get(f"/v1/patients/{records.other_patient}", headers=staff)
    platform.get(f"/v1/appointments/{records.appointment}", headers=staff)

    def listed(**params):
        return platform.get("/v1/audit", headers=ADMIN, params=params).json()["items"]

    assert len(listed(subject=subject)) == 3
    assert {(i["resource"], i["resource_id"]) for i in listed(subject=subject, resource="patient")} == {
        ("patient", records.patient), ("patient", records.other_patient)}
    by_record = listed(resource="patient", resource_id=records.other_patient)
    assert by_record and all(i["resource_id"] == records.other_patient for i in by_record)
    assert subject in {i["subject"] for i in by_record}
    appointment = listed(subject=subject, resource="appointment", resource_id=records.appointment)
    assert [(i["action"], i["outcome"]) for i in appointment] == [("read", 200)]
    assert listed(subject="nobody-at-all") == []


def test_the_log_filters_by_time(platform, records):
    subject = f"adm-{uuid.uuid4().hex[:8]}"
    reads_by(platform, subject, records.patient, 2)
    items = platform.get("/v1/audit", headers=ADMIN, params={"subject": subject}).json()["items"]
    newest, oldest = items[0]["at"], items[1]["at"]
    assert oldest < newest
    assert [i["at"] for i in platform.get("/v1/audit", headers=ADMIN,
                                          params={"subject": subject, "until": newest}).json()["items"]] == [oldest]
    assert newest in [i["at"] for i in platform.get("/v1/audit", headers=ADMIN,
                                                    params={"subject": subject, "since": newest}).json()["items"]]


def test_the_log_paginates_with_next_cursor(platform, records):
    subject = f"adm-{uuid.uuid4().hex[:8]}"
    request_ids = reads_by(platform, subject, records.patient, 5)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"subject": subject, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = platform.get("/v1/audit", headers=ADMIN, params=params)
        assert page.status_code == 200, as_json(page)
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [item["request_id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(request_ids))


def test_reading_the_log_does_not_change_it(platform, records):
    subject = f"adm-{uuid.uuid4().hex[:8]}"
    reads_by(platform, subject, records.patient, 2)
    first = platform.get("/v1/audit", headers=ADMIN, params={"subject": subject}).json()
    assert platform.get("/v1/audit", headers=ADMIN, params={"subject": subject}).json() == first


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "POST"])
def test_no_route_changes_or_deletes_the_log(platform, records, method):
    subject = f"adm-{uuid.uuid4().hex[:8]}"
    reads_by(platform, subject, records.patient, 1)
    before = platform.get("/v1/audit", headers=ADMIN, params={"subject": subject}).json()["items"]
    entry_id = before[0]["entry_id"]
    response = platform.request(method, "/v1/audit", headers=ADMIN, json={"subject": "someone-else"})
    assert_problem(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} <= {"GET", "HEAD", "OPTIONS"}
    assert_problem(platform.request(method, f"/v1/audit/{entry_id}", headers=ADMIN), 404, "not_found")
    assert platform.get("/v1/audit", headers=ADMIN, params={"subject": subject}).json()["items"] == before


# --- the audit store failing --------------------------------------------------------------------------------


class AuditStoreFailingOnce:
    """The gateway's audit collection, refusing every write once ``broken()`` says so."""

    def __init__(self, entries: Any, broken: Any) -> None:
        self._entries = entries
        self._broken = broken

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._entries, name)
        if name in ("insert_one", "update_one", "find_one_and_update", "replace_one") and self._broken():
            raise OperationFailure("the audit log refuses writes")
        return attribute


@pytest.fixture
def audit_store(platform: Platform):
    """Swaps the gateway process's audit collection for one that fails on a condition the test sets."""
    runtime = next(extension for container in platform.runner.containers for extension in container.extensions
                   if isinstance(extension, GatewayRuntime))
    entries = runtime.audit._entries
    condition = {"broken": lambda: False}
    runtime.audit._entries = AuditStoreFailingOnce(entries, lambda: condition["broken"]())
    yield condition
    runtime.audit._entries = entries


def audit_failures(platform: Platform) -> float:
    families = text_string_to_metric_families(platform.get("/metrics").text)
    return sum(sample.value for family in families for sample in family.samples
               if sample.name == "gateway_audit_failures_total")


def test_an_audit_store_lost_after_the_booking_committed_does_not_hide_the_booking(platform, records, audit_store):
    """The booking is answered (201) and the failure counted; the entry written before the booking stays."""
    patient = platform.register(cleared=True)
    committed = {"patient_id": patient}
    audit_store["broken"] = lambda: platform.db("scheduling").appointments.count_documents(committed) > 0
    before = audit_failures(platform)
    response = send(platform, "POST", "/v1/appointments", bearer("patient", patient),
                    json={"patient_id": patient, "visit_type": "iv-mood", "start_at": platform.times.next()})
    assert response.status_code == 201, as_json(response)
    assert platform.db("scheduling").appointments.count_documents(committed) == 1
    audit_store["broken"] = lambda: False
    entry = the_entry_of(platform, response)
    assert (entry["subject"], entry["action"], entry["resource"], entry["ip"]) == (
        patient, "create", "appointment", "127.0.0.1")
    assert entry.get("outcome") is None  # who, what, when and from where are on record; how it ended is not
    assert audit_failures(platform) == before + 1


def test_an_audit_store_lost_before_the_booking_answers_503_and_books_nothing(platform, records, audit_store):
    patient = platform.register(cleared=True)
    audit_store["broken"] = lambda: True
    response = send(platform, "POST", "/v1/appointments", bearer("patient", patient),
                    json={"patient_id": patient, "visit_type": "iv-mood", "start_at": platform.times.next()})
    assert_problem(response, 503, "audit_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert platform.db("scheduling").appointments.count_documents({"patient_id": patient}) == 0
