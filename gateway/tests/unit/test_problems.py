from __future__ import annotations

import json

import pytest
from pymongo.errors import AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError

from gateway.api import problem_for
from gateway.problems import PROBLEM_CONTENT_TYPE, ProblemError, problem, validation_errors


def test_problem_renders_status_headers_and_body() -> None:
    status, headers, body = problem(
        404, "patient_not_found", "Not found", detail="No patient p-1", request_id="req-1"
    )
    assert status == 404
    assert headers == {"Content-Type": PROBLEM_CONTENT_TYPE}
    assert json.loads(body) == {
        "type": "about:blank",
        "title": "Not found",
        "status": 404,
        "code": "patient_not_found",
        "detail": "No patient p-1",
        "request_id": "req-1",
    }


def test_problem_leaves_out_absent_members_and_adds_extensions() -> None:
    _, _, body = problem(429, "rate_limited", "Too many requests", retry_after=7)
    assert json.loads(body) == {
        "type": "about:blank",
        "title": "Too many requests",
        "status": 429,
        "code": "rate_limited",
        "retry_after": 7,
    }


def test_problem_carries_field_errors() -> None:
    errors = [{"field": "dose_mg", "reason": "Must be positive."}]
    _, _, body = problem(422, "validation_failed", "Invalid request", errors=errors)
    assert json.loads(body)["errors"] == errors


def test_problem_error_subclass_renders_with_its_own_status_and_headers() -> None:
    class Gone(ProblemError):
        status = 410
        code = "gone"
        title = "Gone"

        def headers(self) -> dict[str, str]:
            return {"Sunset": "now"}

    status, headers, body = Gone("It left.").to_problem("req-9")
    assert status == 410
    assert headers == {"Content-Type": PROBLEM_CONTENT_TYPE, "Sunset": "now"}
    assert json.loads(body)["detail"] == "It left."
    assert json.loads(body)["request_id"] == "req-9"


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ({"name": ["Missing data for required field."]}, [("name", "Missing data for required field.")]),
        ({"address": {"zip": ["Not a valid string."]}}, [("address.zip", "Not a valid string.")]),
        (
            {"items": {0: {"dose_mg": ["Too big."]}, 2: {"drug": ["Unknown."]}}},
            [("items.0.dose_mg", "Too big."), ("items.2.drug", "Unknown.")],
        ),
        ({"_schema": ["Start must precede end."]}, [("", "Start must precede end.")]),
        ({"window": {"_schema": ["Start must precede end."]}}, [("window", "Start must precede end.")]),
        (
            {"email": ["Not a valid email.", "Too long."]},
            [("email", "Not a valid email."), ("email", "Too long.")],
        ),
        ({}, []),
    ],
    ids=["flat", "nested", "list-indexes", "schema-root", "schema-nested", "several-reasons", "empty"],
)
def test_validation_errors_flatten_marshmallow_messages(
    messages: dict, expected: list[tuple[str, str]]
) -> None:
    assert validation_errors(messages) == [{"field": field, "reason": reason} for field, reason in expected]


def test_validation_errors_from_a_real_schema() -> None:
    from marshmallow import Schema, ValidationError, fields

    class AddressSchema(Schema):
        zip = fields.String(required=True)

    class PatientSchema(Schema):
        name = fields.String(required=True)
        address = fields.Nested(AddressSchema, required=True)

    with pytest.raises(ValidationError) as raised:
        PatientSchema().load({"address": {}})
    assert sorted(validation_errors(raised.value.messages), key=lambda error: error["field"]) == [
        {"field": "address.zip", "reason": "Missing data for required field."},
        {"field": "name", "reason": "Missing data for required field."},
    ]


@pytest.mark.parametrize("lost", [ServerSelectionTimeoutError("no server"), AutoReconnect("connection reset"),
                                  NetworkTimeout("timed out")])
def test_the_gateways_store_out_of_reach_is_503_store_unavailable_with_retry_after(lost):
    status, headers, body = problem_for(lost, "req-1")
    assert status == 503
    assert headers["Content-Type"] == "application/problem+json"
    assert int(headers["Retry-After"]) >= 1
    assert json.loads(body)["code"] == "store_unavailable"
