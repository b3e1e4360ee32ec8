from __future__ import annotations

import pytest
from marshmallow import Schema, fields

from gateway.routes import Route, index_routes, werkzeug_rule


class DoseSchema(Schema):
    dose_mg = fields.Float(required=True)


def _route(**overrides: object) -> Route:
    fields_ = {
        "method": "GET",
        "path": "/v1/patients/{patient_id}",
        "operation_id": "get_patient",
        "summary": "Get a patient",
        "tag": "patients",
        "roles": ("clinician",),
    }
    fields_.update(overrides)
    return Route(**fields_)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("/health", "/health"),
        ("/v1/patients/{patient_id}", "/v1/patients/<string:patient_id>"),
        (
            "/v1/patients/{patient_id}/infusions/{infusion_id}",
            "/v1/patients/<string:patient_id>/infusions/<string:infusion_id>",
        ),
    ],
)
def test_werkzeug_rule(path: str, rule: str) -> None:
    assert werkzeug_rule(path) == rule


def test_path_params_in_order() -> None:
    route = _route(path="/v1/patients/{patient_id}/infusions/{infusion_id}")
    assert route.path_params == ("patient_id", "infusion_id")
    assert route.werkzeug_rule == "/v1/patients/<string:patient_id>/infusions/<string:infusion_id>"


@pytest.mark.parametrize(
    ("overrides", "action"),
    [
        ({}, None),
        ({"phi_resource": "patient"}, "read"),
        ({"phi_resource": "patient", "many": True, "path": "/v1/patients"}, "list"),
        ({"phi_resource": "patient", "method": "POST", "path": "/v1/patients"}, "create"),
        ({"phi_resource": "patient", "method": "PATCH"}, "update"),
        ({"phi_resource": "patient", "method": "PUT"}, "update"),
        ({"phi_resource": "patient", "method": "DELETE"}, "delete"),
        ({"phi_resource": "message", "method": "POST", "phi_action": "send"}, "send"),
    ],
    ids=["no-phi", "read", "list", "create", "patch", "put", "delete", "explicit-send"],
)
def test_audit_action(overrides: dict, action: str | None) -> None:
    assert _route(**overrides).audit_action == action


@pytest.mark.parametrize(
    ("overrides", "statuses"),
    [
        ({"auth": "none", "roles": ()}, ()),
        ({}, (401, 403)),
        ({"errors": (404,)}, (401, 403, 404)),
        ({"auth": "signature", "roles": (), "method": "POST", "request_schema": DoseSchema}, (400, 401, 422)),
        ({"method": "POST", "idempotent": True}, (400, 401, 403, 409, 422)),
        ({"many": True}, (400, 401, 403)),
    ],
    ids=["public", "bearer", "declared", "signature-with-body", "idempotent", "list"],
)
def test_error_statuses_include_what_the_gateway_may_answer(
    overrides: dict, statuses: tuple[int, ...]
) -> None:
    assert _route(**overrides).error_statuses == statuses


def test_allows_only_listed_roles() -> None:
    route = _route(roles=("clinician", "nurse"))
    assert route.allows("nurse")
    assert not route.allows("patient")
    assert not route.allows(None)
    public = _route(auth="none", roles=())
    assert public.is_public and public.allows(None)


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "get"},
        {"method": "HEAD"},
        {"path": "v1/patients"},
        {"auth": "basic"},
        {"roles": ("superuser",)},
        {"roles": ()},
        {"auth": "none"},
        {"phi_resource": "patient", "phi_action": "peek"},
        {"idempotent": True},
        {"response_status": 404},
        {"errors": (302,)},
        {"signature": "paypal"},
        {"body_type": "xml"},
    ],
    ids=[
        "lowercase-method",
        "unsupported-method",
        "relative-path",
        "unknown-auth",
        "unknown-role",
        "bearer-without-roles",
        "public-with-roles",
        "unknown-action",
        "idempotent-get",
        "error-as-success",
        "redirect-as-error",
        "unknown-signature-scheme",
        "unknown-body-type",
    ],
)
def test_route_refuses_inconsistent_declarations(overrides: dict) -> None:
    with pytest.raises(ValueError):
        _route(**overrides)


def test_index_routes_by_operation_id() -> None:
    get = _route()
    delete = _route(method="DELETE", operation_id="delete_patient")
    assert index_routes([get, delete]) == {"get_patient": get, "delete_patient": delete}


@pytest.mark.parametrize(
    "duplicate",
    [
        _route(method="DELETE"),
        _route(operation_id="get_patient_again", path="/v1/patients/{id}"),
    ],
    ids=["same-operation-id", "same-method-and-path"],
)
def test_index_routes_refuses_duplicates(duplicate: Route) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        index_routes([_route(), duplicate])


def test_a_route_takes_json_unless_it_says_form() -> None:
    assert _route().content_type == "application/json"
    assert _route(body_type="form").content_type == "application/x-www-form-urlencoded"
