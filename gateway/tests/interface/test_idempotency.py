"""``Idempotency-Key`` on the POSTs that create: a retry returns the first answer and creates nothing more;
another body under the same key is refused; keys are scoped to the caller; malformed keys are refused."""

from __future__ import annotations

import hashlib
import json
import uuid

import eventlet
import pytest

from gateway.tests.interface.support import Platform, as_json, assert_problem, bearer, registration


@pytest.fixture(scope="module")
def nurse(platform: Platform) -> str:
    return platform.add_nurse()


@pytest.fixture
def patient(platform: Platform, nurse) -> str:
    return platform.register(cleared=True)


def key() -> str:
    return f"key-{uuid.uuid4().hex}"


def appointments_of(platform: Platform, patient_id: str) -> int:
    return platform.db("scheduling").appointments.count_documents({"patient_id": patient_id})


def patients_with(platform: Platform, email: str) -> int:
    return platform.db("intake").patients.count_documents({"email": email})


def book(platform: Platform, patient_id: str, body: dict, idempotency_key: str | None):
    headers = bearer("patient", patient_id)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return platform.post("/v1/appointments", headers=headers, json=body)


def booking_body(platform: Platform, patient_id: str) -> dict:
    return {"patient_id": patient_id, "visit_type": "iv-mood", "start_at": platform.times.next()}


def test_a_booking_retried_with_its_key_replays_the_first_answer_and_books_once(platform, patient):
    body, k = booking_body(platform, patient), key()
    first, second = book(platform, patient, body, k), book(platform, patient, body, k)
    assert first.status_code == 201, as_json(first)
    assert (second.status_code, second.content) == (first.status_code, first.content)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Content-Type"] == "application/json"
    assert appointments_of(platform, patient) == 1
    listed = platform.get("/v1/appointments", headers=bearer("patient", patient)).json()["items"]
    assert [item["id"] for item in listed] == [first.json()["id"]]


def test_a_sign_up_retried_with_its_key_registers_once(platform):
    body, k = registration(), key()
    first = platform.post("/v1/patients", json=body, headers={"Idempotency-Key": k})
    second = platform.post("/v1/patients", json=body, headers={"Idempotency-Key": k})
    assert first.status_code == 201
    assert (second.status_code, second.json()) == (201, first.json())
    assert second.headers["Idempotent-Replayed"] == "true"
    assert patients_with(platform, body["email"]) == 1


def test_without_a_key_a_retried_sign_up_is_a_conflict_not_a_second_patient(platform):
    body = registration()
    assert platform.post("/v1/patients", json=body).status_code == 201
    assert_problem(platform.post("/v1/patients", json=body), 409, "patient_already_registered")
    assert patients_with(platform, body["email"]) == 1


def test_a_refusal_is_replayed_too(platform, patient):
    """The first answer is kept whatever it was (below 500): the retry gets the same refusal, marked replayed."""
    too_soon = {"patient_id": patient, "visit_type": "iv-mood", "start_at": "2020-01-06T17:00:00Z"}
    k = key()
    first, second = book(platform, patient, too_soon, k), book(platform, patient, too_soon, k)
    assert_problem(first, 422, "time_not_bookable")
    assert (second.status_code, second.content) == (first.status_code, first.content)
    assert second.headers["Content-Type"] == "application/problem+json"
    assert second.headers["Idempotent-Replayed"] == "true"
    assert appointments_of(platform, patient) == 0


def test_the_same_key_with_another_body_is_422_idempotency_key_reused_and_books_nothing_more(platform, patient):
    k = key()
    assert book(platform, patient, booking_body(platform, patient), k).status_code == 201
    response = book(platform, patient, booking_body(platform, patient), k)
    assert_problem(response, 422, "idempotency_key_reused")
    assert appointments_of(platform, patient) == 1


def test_the_same_key_with_another_sign_up_is_422_and_registers_nobody(platform):
    k = key()
    assert platform.post("/v1/patients", json=registration(), headers={"Idempotency-Key": k}).status_code == 201
    other = registration()
    response = platform.post("/v1/patients", json=other, headers={"Idempotency-Key": k})
    assert_problem(response, 422, "idempotency_key_reused")
    assert patients_with(platform, other["email"]) == 0


def test_keys_are_scoped_per_caller_two_patients_may_use_the_same_key(platform, nurse):
    first, second = platform.register(cleared=True), platform.register(cleared=True)
    shared = key()
    one = book(platform, first, booking_body(platform, first), shared)
    two = book(platform, second, booking_body(platform, second), shared)
    assert (one.status_code, two.status_code) == (201, 201), (as_json(one), as_json(two))
    assert "Idempotent-Replayed" not in two.headers
    assert one.json()["id"] != two.json()["id"]
    assert two.json()["patient_id"] == second
    assert (appointments_of(platform, first), appointments_of(platform, second)) == (1, 1)


def test_a_key_is_not_shared_between_an_admin_and_the_patient(platform, patient):
    body, k = booking_body(platform, patient), key()
    by_patient = book(platform, patient, body, k)
    by_admin = platform.post("/v1/appointments", json=body, headers={**bearer("admin", "ops-1"), "Idempotency-Key": k})
    assert by_patient.status_code == 201
    assert "Idempotent-Replayed" not in by_admin.headers
    assert_problem(by_admin, 409, "patient_has_overlapping_visit")  # the admin's request ran: that visit exists


@pytest.mark.parametrize("bad_key", ["k" * 256, "k" * 300, "has space", "tab\there", "ünïcode", ""])
def test_an_invalid_key_is_400_and_books_nothing(platform, patient, bad_key):
    headers = {**bearer("patient", patient), "Idempotency-Key": bad_key.encode("utf-8")}
    response = platform.post("/v1/appointments", headers=headers, json=booking_body(platform, patient))
    assert_problem(response, 400, "invalid_idempotency_key")
    assert appointments_of(platform, patient) == 0


def test_the_longest_valid_key_is_accepted(platform, patient):
    assert book(platform, patient, booking_body(platform, patient), "k" * 255).status_code == 201


def test_concurrent_retries_with_one_key_book_once(platform, patient):
    """Retries racing the first request are refused (409 request_in_progress, Retry-After) or replayed."""
    body, k = booking_body(platform, patient), key()
    pool = eventlet.GreenPool(6)
    responses = list(pool.imap(lambda _: book(platform, patient, body, k), range(6)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(201) >= 1, [as_json(r) for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "request_in_progress")
            assert int(response.headers["Retry-After"]) >= 1
        else:
            assert response.status_code == 201, as_json(response)
    created = {response.json()["id"] for response in responses if response.status_code == 201}
    assert len(created) == 1
    assert appointments_of(platform, patient) == 1


def test_a_key_on_a_malformed_body_does_not_claim_the_key(platform, patient):
    """Validation comes first: a key sent with an invalid body can be reused for the corrected one."""
    k = key()
    bad = platform.post("/v1/appointments", data=b"{", headers={**bearer("patient", patient), "Idempotency-Key": k,
                                                                "Content-Type": "application/json"})
    assert_problem(bad, 400, "malformed_json")
    good = book(platform, patient, booking_body(platform, patient), k)
    assert good.status_code == 201 and "Idempotent-Replayed" not in good.headers


def test_whitespace_differences_make_another_body(platform, patient):
    """The key guards the exact bytes sent: the same JSON spelled differently is another request."""
    body, k = booking_body(platform, patient), key()
    headers = {**bearer("patient", patient), "Idempotency-Key": k, "Content-Type": "application/json"}
    assert platform.post("/v1/appointments", data=json.dumps(body), headers=headers).status_code == 201
    response = platform.post("/v1/appointments", data=json.dumps(body, indent=2), headers=headers)
    assert_problem(response, 422, "idempotency_key_reused")
    assert appointments_of(platform, patient) == 1


# --- the operation key the services derive their ids from ----------------------------------------------


def operation_key_of(platform: Platform, appointment_id: str) -> str:
    return platform.db("scheduling").appointments.find_one({"_id": appointment_id})["operation_key"]


def test_a_booking_with_a_key_runs_under_an_operation_key_derived_from_the_caller_route_and_key(platform, patient):
    k = key()
    booked = book(platform, patient, booking_body(platform, patient), k)
    assert booked.status_code == 201, as_json(booked)
    scoped = hashlib.sha256("\x00".join((patient, "bookAppointment", k)).encode()).hexdigest()
    assert operation_key_of(platform, booked.json()["id"]) == scoped


def test_without_a_key_each_booking_gets_its_own_operation_key_not_the_clients_request_id(platform, patient):
    """X-Request-ID is the client's to reuse: it must not make two bookings one operation."""
    headers = {**bearer("patient", patient), "X-Request-ID": f"reused-{uuid.uuid4().hex}"}
    first = platform.post("/v1/appointments", headers=headers, json=booking_body(platform, patient))
    second = platform.post("/v1/appointments", headers=headers, json=booking_body(platform, patient))
    assert (first.status_code, second.status_code) == (201, 201), (as_json(first), as_json(second))
    keys = {operation_key_of(platform, answer.json()["id"]) for answer in (first, second)}
    assert len(keys) == 2
    assert headers["X-Request-ID"] not in keys
