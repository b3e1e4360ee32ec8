from __future__ import annotations

import re
from typing import Any

import pytest
from marshmallow import Schema, fields, validate

from gateway.openapi import DOCS_ASSETS, build_spec, docs_asset
from gateway.pagination import PageQuerySchema
from gateway.routes import Route


class AddressSchema(Schema):
    line1 = fields.String(required=True)
    zip = fields.String(required=True, validate=validate.Length(equal=5))


class PatientSchema(Schema):
    id = fields.String(dump_only=True)
    name = fields.String(required=True)
    address = fields.Nested(AddressSchema, required=True)


class PatientListQuerySchema(PageQuerySchema):
    state = fields.String(validate=validate.Length(equal=2))


class PaymentSchema(Schema):
    id = fields.String(dump_only=True)
    amount_cents = fields.Integer(required=True, validate=validate.Range(min=1))


class HealthSchema(Schema):
    status = fields.String()


ROUTES = (
    Route("GET", "/health", "health", "Liveness", "operations", auth="none", response_schema=HealthSchema),
    Route(
        "GET",
        "/v1/patients",
        "list_patients",
        "List patients",
        "patients",
        roles=("clinician", "nurse"),
        query_schema=PatientListQuerySchema,
        response_schema=PatientSchema,
        many=True,
        phi_resource="patient",
    ),
    Route(
        "GET",
        "/v1/patients/{patient_id}",
        "get_patient",
        "Get a patient",
        "patients",
        roles=("clinician", "nurse", "patient"),
        response_schema=PatientSchema,
        errors=(404,),
        phi_resource="patient",
    ),
    Route(
        "POST",
        "/v1/payments",
        "create_payment",
        "Charge a card",
        "payments",
        roles=("patient",),
        request_schema=PaymentSchema,
        response_schema=PaymentSchema,
        response_status=201,
        idempotent=True,
    ),
    Route(
        "GET",
        "/v1/payments",
        "list_payments",
        "List payments",
        "payments",
        roles=("finance",),
        response_schema=PaymentSchema,
        many=True,
    ),
    Route(
        "POST",
        "/v1/webhooks/stripe",
        "stripe_webhook",
        "Stripe events",
        "payments",
        auth="signature",
        response_status=204,
    ),
)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return build_spec(ROUTES, "Infusion API", "1.2.0", description="Test spec")


def _parameters(spec: dict[str, Any], path: str, method: str) -> list[dict[str, Any]]:
    """Parameters of an operation with component references resolved."""
    resolved = []
    for parameter in spec["paths"][path][method].get("parameters", []):
        if "$ref" in parameter:
            parameter = spec["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[-1]]
        resolved.append(parameter)
    return resolved


def test_spec_validates_as_openapi_3(spec: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(spec)
    assert spec["openapi"] == "3.0.3"
    assert spec["info"] == {"title": "Infusion API", "version": "1.2.0", "description": "Test spec"}


def test_every_route_is_an_operation(spec: dict[str, Any]) -> None:
    operation_ids = {
        operation["operationId"] for path_item in spec["paths"].values() for operation in path_item.values()
    }
    assert operation_ids == {route.operation_id for route in ROUTES}
    assert [tag["name"] for tag in spec["tags"]] == ["operations", "patients", "payments"]


@pytest.mark.parametrize(
    ("path", "method", "security", "roles"),
    [
        ("/health", "get", [], []),
        ("/v1/patients", "get", [{"bearerAuth": []}], ["clinician", "nurse"]),
        ("/v1/webhooks/stripe", "post", [{"webhookSignature": []}], []),
    ],
)
def test_security_and_roles(
    spec: dict[str, Any], path: str, method: str, security: list, roles: list[str]
) -> None:
    operation = spec["paths"][path][method]
    assert operation["security"] == security
    assert operation["x-roles"] == roles


def test_security_schemes(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["webhookSignature"] == {"type": "apiKey", "in": "header", "name": "Stripe-Signature"}


def test_path_parameters(spec: dict[str, Any]) -> None:
    [path_parameter] = [p for p in _parameters(spec, "/v1/patients/{patient_id}", "get") if p["in"] == "path"]
    assert path_parameter == {
        "in": "path",
        "name": "patient_id",
        "required": True,
        "schema": {"type": "string"},
    }


def test_query_parameters_come_from_the_query_schema(spec: dict[str, Any]) -> None:
    query = {p["name"]: p for p in _parameters(spec, "/v1/patients", "get") if p["in"] == "query"}
    assert set(query) == {"limit", "cursor", "state"}
    assert query["state"]["schema"] == {"type": "string", "minLength": 2, "maxLength": 2}
    assert query["limit"]["schema"]["minimum"] == 1


def test_list_without_query_schema_still_documents_paging(spec: dict[str, Any]) -> None:
    query = {p["name"] for p in _parameters(spec, "/v1/payments", "get") if p["in"] == "query"}
    assert query == {"limit", "cursor"}


@pytest.mark.parametrize(
    ("path", "method", "idempotency_key"),
    [("/v1/payments", "post", True), ("/v1/payments", "get", False), ("/health", "get", False)],
)
def test_header_parameters(spec: dict[str, Any], path: str, method: str, idempotency_key: bool) -> None:
    headers = {p["name"]: p for p in _parameters(spec, path, method) if p["in"] == "header"}
    assert headers["X-Request-ID"]["required"] is False
    assert ("Idempotency-Key" in headers) is idempotency_key
    if idempotency_key:
        assert headers["Idempotency-Key"]["required"] is False
        assert headers["Idempotency-Key"]["schema"]["maxLength"] == 255


def test_idempotency_key_can_be_required() -> None:
    spec = build_spec(ROUTES, "API", "1", require_idempotency_key=True)
    assert spec["components"]["parameters"]["IdempotencyKey"]["required"] is True


def test_request_body_uses_the_schema(spec: dict[str, Any]) -> None:
    body = spec["paths"]["/v1/payments"]["post"]["requestBody"]
    assert body == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Payment"}}},
    }
    payment = spec["components"]["schemas"]["Payment"]
    assert payment["required"] == ["amount_cents"]
    assert payment["properties"]["id"]["readOnly"] is True


def test_list_responses_are_pages(spec: dict[str, Any]) -> None:
    response = spec["paths"]["/v1/patients"]["get"]["responses"]["200"]
    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PatientPage"}
    page = spec["components"]["schemas"]["PatientPage"]
    assert page["required"] == ["items", "next_cursor"]
    assert page["properties"]["items"] == {"type": "array", "items": {"$ref": "#/components/schemas/Patient"}}
    assert page["properties"]["next_cursor"] == {"type": "string", "nullable": True}
    assert "Address" in spec["components"]["schemas"]


def test_single_responses_use_the_schema_and_status(spec: dict[str, Any]) -> None:
    created = spec["paths"]["/v1/payments"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Payment"}
    assert created["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/RequestId"}
    assert "content" not in spec["paths"]["/v1/webhooks/stripe"]["post"]["responses"]["204"]


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/health", "get", {"200", "429"}),
        ("/v1/patients/{patient_id}", "get", {"200", "401", "403", "404", "429"}),
        ("/v1/payments", "post", {"201", "400", "401", "403", "409", "422", "429"}),
        ("/v1/webhooks/stripe", "post", {"204", "401", "429"}),
    ],
)
def test_error_statuses_are_problems(
    spec: dict[str, Any], path: str, method: str, statuses: set[str]
) -> None:
    responses = spec["paths"][path][method]["responses"]
    assert set(responses) == statuses
    for status, response in responses.items():
        if status.startswith("2"):
            continue
        assert response["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
        assert ("Retry-After" in response["headers"]) is (status in {"409", "429"})


def test_problem_schema(spec: dict[str, Any]) -> None:
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == {"type", "title", "status", "code", "detail", "request_id", "errors"}
    assert set(problem["required"]) == {"type", "title", "status", "code"}
    assert problem["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/FieldError"}
    assert spec["components"]["schemas"]["FieldError"]["required"] == ["field", "reason"]


def test_common_errors_are_configurable() -> None:
    spec = build_spec(ROUTES[:1], "API", "1", common_errors=(429, 503))
    assert set(spec["paths"]["/health"]["get"]["responses"]) == {"200", "429", "503"}


@pytest.mark.parametrize("name", sorted(DOCS_ASSETS))
def test_docs_assets_are_served_with_their_content_type(name: str) -> None:
    body, content_type = docs_asset(name)
    assert body
    assert content_type.endswith("charset=utf-8")


@pytest.mark.parametrize("name", ["../openapi.py", "missing.js", "/etc/passwd", ""])
def test_docs_asset_refuses_other_names(name: str) -> None:
    with pytest.raises(KeyError):
        docs_asset(name)


def test_docs_page_is_self_contained() -> None:
    html = docs_asset("docs.html")[0].decode()
    assert 'src="/docs/docs.js"' in html and 'href="/docs/docs.css"' in html
    for name in DOCS_ASSETS:
        text = docs_asset(name)[0].decode()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), f"{name} loads something external"
        assert "@import" not in text and "<script>" not in text
    assert "/openapi.json" in docs_asset("docs.js")[0].decode()
