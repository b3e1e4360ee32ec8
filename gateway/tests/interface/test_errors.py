"""Every error is ``application/problem+json`` with ``status`` equal to the HTTP status, a stable ``code``
and the request id (``X-Request-ID``); the gateway's own refusals and the services' domain errors alike."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.tests.interface.support import Platform, assert_problem, bearer, registration
from services.scheduling.tests.examples import nurse_record

MAX_BODY_BYTES = 2048
ADMIN = bearer("admin", "ops-errors")


@pytest.fixture(scope="module")
def gateway_settings():
    return {"MAX_BODY_BYTES": MAX_BODY_BYTES}


@pytest.fixture(scope="module")
def patient_id(platform: Platform) -> str:
    platform.add_nurse()
    return platform.register(cleared=True)


def counts(platform: Platform) -> tuple[int, int]:
    return (platform.db("intake").patients.count_documents({}),
            platform.db("scheduling").appointments.count_documents({}))


# --- unknown paths, methods ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/v1/patient", "/v1/patients/pat_1/everything", "/v2/appointments"])
def test_an_unknown_path_is_404_problem_with_request_id(platform, path):
    body = assert_problem(platform.get(path, headers=ADMIN), 404, "not_found")
    assert body["request_id"]


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/v1/patients", {"POST"}),
    ("PUT", "/v1/appointments", {"GET", "POST"}),
    ("DELETE", "/v1/patients/pat_1", {"GET"}),
    ("POST", "/v1/invoices/inv_1", {"GET"}),
    ("PATCH", "/v1/nurses/nur_1", {"PUT"}),
])
def test_a_wrong_method_is_405_with_allow(platform, method, path, allowed):
    response = platform.request(method, path, headers=ADMIN)
    assert_problem(response, 405, "method_not_allowed")
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


# --- bodies ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{", b'{"first_name": "Dana",}', b"\xff\xfe", b"{'single': 'quotes'}"])
def test_malformed_json_is_400_malformed_json(platform, raw):
    before = counts(platform)
    response = platform.post("/v1/patients", data=raw, headers={"Content-Type": "application/json"})
    assert_problem(response, 400, "malformed_json")
    assert counts(platform) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                                          "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_json_is_415(platform, content_type):
    response = platform.post("/v1/patients", data=b'{"first_name": "Dana"}', headers={"Content-Type": content_type})
    assert_problem(response, 415, "unsupported_media_type")


def test_json_with_a_charset_is_accepted(platform):
    response = platform.post("/v1/patients", data=json.dumps(registration()).encode(),
                             headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("body", "field"), [
    ({**registration(), "favourite_colour": "teal"}, "favourite_colour"),
    ({**registration(), "address": {**registration()["address"], "planet": "Earth"}}, "address.planet"),
])
def test_an_unknown_field_is_422_naming_it(platform, body, field):
    before = counts(platform)
    problem = assert_problem(platform.post("/v1/patients", json=body), 422, "validation_failed")
    assert field in {error["field"] for error in problem["errors"]}
    assert all(error["reason"] for error in problem["errors"])
    assert counts(platform) == before


@pytest.mark.parametrize("raw", [b"[]", b'"a string"', b"42", b"null", b""])
def test_a_body_that_is_not_an_object_is_422(platform, raw):
    response = platform.post("/v1/patients", data=raw, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["field"] == ""


def test_a_missing_required_field_is_422_naming_it(platform):
    body = registration()
    del body["date_of_birth"]
    problem = assert_problem(platform.post("/v1/patients", json=body), 422, "validation_failed")
    assert {"field": "date_of_birth", "reason": "Missing data for required field."} in problem["errors"]


@pytest.mark.parametrize("operator", [{"$gt": ""}, {"$ne": None}, {"$regex": ".*"}, ["$gt", ""]])
def test_a_query_operator_as_email_is_422_and_nothing_is_stored(platform, operator):
    before = counts(platform)
    problem = assert_problem(platform.post("/v1/patients", json=registration(email=operator)), 422)
    assert "email" in {error["field"] for error in problem["errors"]}
    assert counts(platform) == before


@pytest.mark.parametrize("operator", [{"$gt": ""}, {"$ne": None}, {"$in": ["x"]}])
def test_a_query_operator_as_patient_id_is_422_and_nothing_is_booked(platform, patient_id, operator):
    before = counts(platform)
    response = platform.post("/v1/appointments", headers=ADMIN,
                             json={"patient_id": operator, "visit_type": "iv-mood", "start_at": platform.times.next()})
    problem = assert_problem(response, 422, "validation_failed")
    assert "patient_id" in {error["field"] for error in problem["errors"]}
    assert counts(platform) == before


def test_an_operator_in_a_query_value_is_only_a_string(platform, patient_id):
    platform.book(patient_id)
    response = platform.get("/v1/appointments", headers=ADMIN, params={"patient_id": '{"$gt": ""}'})
    assert response.status_code == 200
    assert response.json()["items"] == []


def test_an_operator_in_a_query_key_is_an_unknown_parameter(platform):
    problem = assert_problem(platform.get("/v1/appointments?patient_id[$gt]=", headers=ADMIN), 400, "invalid_query")
    assert problem["errors"][0]["field"] == "patient_id[$gt]"


def test_a_body_over_max_body_bytes_is_413_and_nothing_is_stored(platform):
    before = counts(platform)
    body = registration(last_name="x" * 100, address={**registration()["address"], "line2": "y" * (MAX_BODY_BYTES)})
    assert_problem(platform.post("/v1/patients", json=body), 413, "body_too_large")
    assert counts(platform) == before


def test_a_body_just_under_max_body_bytes_is_read(platform):
    body = registration()
    padding = MAX_BODY_BYTES - len(json.dumps(body)) - 20
    body["address"]["line2"] = "y" * min(200, padding)
    assert platform.post("/v1/patients", json=body).status_code == 201


def test_a_chunked_json_body_is_read(platform):
    payload = json.dumps(registration()).encode()

    def chunks():
        yield payload[:40]
        yield payload[40:]

    response = platform.post("/v1/patients", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


# --- query strings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "parameter"), [
    ("/v1/appointments?colour=teal", "colour"),
    ("/v1/invoices?status=open", "status"),
    ("/v1/audit?action=read", "action"),
    ("/v1/nurses?state=CO", "state"),
    ("/health?verbose=1", "verbose"),
])
def test_an_unknown_query_parameter_is_400_naming_it(platform, path, parameter):
    problem = assert_problem(platform.get(path, headers=ADMIN), 400, "invalid_query")
    assert parameter in {error["field"] for error in problem["errors"]}


@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "limit=ten", "limit=1&limit=2", "cursor="])
def test_an_invalid_paging_parameter_is_400(platform, query):
    assert_problem(platform.get(f"/v1/appointments?{query}", headers=ADMIN), 400, "invalid_query")


@pytest.mark.parametrize("path", ["/v1/appointments", "/v1/invoices", "/v1/audit", "/v1/nurses",
                                  "/v1/patients/pat_x/notifications"])
@pytest.mark.parametrize("cursor", ["not-a-cursor", "eyJhIjogMX0", "e30", "W10"])
def test_an_invalid_cursor_is_400_invalid_cursor(platform, path, cursor):
    assert_problem(platform.get(path, headers=ADMIN, params={"cursor": cursor}), 400, "invalid_cursor")


# --- domain errors from the services ------------------------------------------------------------------------


def test_booking_a_patient_under_18_is_422_patient_not_cleared_with_reasons(platform):
    today = date.today()
    minor = platform.register(cleared=True, date_of_birth=today.replace(year=today.year - 17).isoformat())
    before = counts(platform)
    response = platform.post("/v1/appointments", headers=bearer("patient", minor),
                             json={"patient_id": minor, "visit_type": "iv-mood", "start_at": platform.times.next()})
    problem = assert_problem(response, 422, "patient_not_cleared")
    assert problem["reasons"] == ["under_minimum_age"]
    assert counts(platform) == before


def test_booking_a_time_every_licensed_nurse_has_taken_is_409_slot_taken(platform):
    platform.add_nurse(states=("WA",), based_at="98109", time_zone="America/Los_Angeles")  # the only one in WA
    seattle = {"address": {"line1": "400 Broad St", "city": "Seattle", "state": "WA", "postal_code": "98109"},
               "time_zone": "America/Los_Angeles"}
    first, second = platform.register(cleared=True, **seattle), platform.register(cleared=True, **seattle)
    start = platform.times.next()
    assert platform.book(first, start)["status"] == "booked"
    before = counts(platform)
    response = platform.post("/v1/appointments", headers=bearer("patient", second),
                             json={"patient_id": second, "visit_type": "iv-mood", "start_at": start})
    assert_problem(response, 409, "slot_taken")
    assert counts(platform) == before


def test_booking_too_soon_is_422_time_not_bookable_with_the_reason(platform, patient_id):
    soon = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0).isoformat()
    response = platform.post("/v1/appointments", headers=bearer("patient", patient_id),
                             json={"patient_id": patient_id, "visit_type": "iv-mood", "start_at": soon})
    problem = assert_problem(response, 422, "time_not_bookable")
    assert problem["reason"] == "too_soon"


def unknown_visit_type(platform: Platform, patient_id: str):
    return platform.post("/v1/appointments", headers=bearer("patient", patient_id),
                         json={"patient_id": patient_id, "visit_type": "iv-unknown", "start_at": platform.times.next()})


def test_an_unknown_visit_type_is_422_invalid_visit_type(platform, patient_id):
    assert_problem(unknown_visit_type(platform, patient_id), 422, "invalid_visit_type")


def test_an_unknown_visit_type_names_the_field_in_errors(platform, patient_id):
    problem = assert_problem(unknown_visit_type(platform, patient_id), 422, "invalid_visit_type")
    assert problem["errors"][0]["field"] == "visit_type"


@pytest.mark.parametrize(("path", "code"), [
    ("/v1/appointments/apt_0000", "appointment_not_found"),
    ("/v1/patients/pat_0000", "patient_not_found"),
    ("/v1/invoices/inv_0000", "invoice_not_found"),
])
def test_an_unknown_id_is_404_with_the_services_code(platform, path, code):
    assert_problem(platform.get(path, headers=ADMIN), 404, code)


def test_booking_for_an_unknown_patient_is_404(platform):
    body = {"patient_id": "pat_0000", "visit_type": "iv-mood", "start_at": platform.times.next()}
    response = platform.post("/v1/appointments", headers=ADMIN, json=body)
    assert_problem(response, 404, "patient_not_found")


def test_registering_an_email_twice_is_409(platform):
    body = registration()
    assert platform.post("/v1/patients", json=body).status_code == 201
    assert_problem(platform.post("/v1/patients", json={**body, "email": body["email"].upper()}), 409,
                   "patient_already_registered")


def bad_nurse_id(platform: Platform):
    return platform.put("/v1/nurses/not-a-nurse-id", headers=ADMIN, json=nurse_record("Avery"))


def test_a_service_side_validation_error_is_422(platform):
    assert_problem(bad_nurse_id(platform), 422, "invalid_input")


def test_a_service_side_validation_error_names_the_field_in_errors(platform):
    problem = assert_problem(bad_nurse_id(platform), 422, "invalid_input")
    assert "id" in {error["field"] for error in problem["errors"]}


# --- times at the ends of the calendar are a 4xx, never a 500 ----------------------------------------

EDGE_INSTANTS = ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-05:00"]

@pytest.mark.parametrize("start_at", EDGE_INSTANTS)
def test_a_visit_time_at_the_ends_of_the_calendar_is_a_4xx_not_a_500(platform, patient_id, start_at):
    response = platform.post("/v1/appointments", headers=bearer("patient", patient_id),
                             json={"patient_id": patient_id, "visit_type": "iv-mood", "start_at": start_at})
    assert 400 <= response.status_code < 500, response.text
    assert_problem(response, response.status_code)


@pytest.mark.parametrize("bound", ["since", "until"])
@pytest.mark.parametrize("instant", EDGE_INSTANTS)
def test_an_audit_time_filter_at_the_ends_of_the_calendar_is_not_a_500(platform, bound, instant):
    response = platform.get("/v1/audit", headers=ADMIN, params={bound: instant})
    assert response.status_code < 500, response.text
