"""OpenAPI 3.0.3 document built from the route table, and the assets of the /docs page."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema

from gateway.pagination import PageQuerySchema
from gateway.problems import PROBLEM_CONTENT_TYPE, ProblemSchema
from gateway.routes import Route
from gateway.signatures import SIGNATURE_HEADERS

OPENAPI_VERSION = "3.0.3"
BEARER_SCHEME = "bearerAuth"
SIGNATURE_SCHEME = "webhookSignature"  # Stripe's
TWILIO_SIGNATURE_SCHEME = "twilioSignature"
RETRY_AFTER_STATUSES = (409, 429, 503)
STATIC_DIR = Path(__file__).parent / "static"
DOCS_ASSETS = {
    "docs.html": "text/html; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
}


def build_spec(
    routes: Iterable[Route],
    title: str,
    version: str,
    *,
    description: str | None = None,
    common_errors: tuple[int, ...] = (429,),
    signature_header: str = "Stripe-Signature",
    require_idempotency_key: bool = False,
) -> dict[str, Any]:
    """The OpenAPI document for ``routes``; ``common_errors`` are added to every operation.

    ``require_idempotency_key`` marks the Idempotency-Key header required on idempotent
    routes; leave it False while the gateway accepts requests without one.
    """
    marshmallow_plugin = MarshmallowPlugin()
    info = {"description": description} if description else {}
    spec = APISpec(title, version, OPENAPI_VERSION, plugins=[marshmallow_plugin], info=info)
    _add_shared_components(spec, signature_header, require_idempotency_key)
    builder = _OperationBuilder(spec, marshmallow_plugin, common_errors)
    operations: dict[str, dict[str, Any]] = {}
    for route in routes:
        operations.setdefault(route.path, {})[route.method.lower()] = builder.operation(route)
        if route.tag not in builder.tags:
            builder.tags.append(route.tag)
    for tag in builder.tags:
        spec.tag({"name": tag})
    for path, path_operations in operations.items():
        spec.path(path=path, operations=path_operations)
    return spec.to_dict()


def docs_asset(name: str) -> tuple[bytes, str]:
    """Bytes and content type of one /docs asset; KeyError for any other name."""
    content_type = DOCS_ASSETS[name]
    return (STATIC_DIR / name).read_bytes(), content_type


def _add_shared_components(spec: APISpec, signature_header: str, require_idempotency_key: bool) -> None:
    spec.components.security_scheme(
        BEARER_SCHEME, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    spec.components.security_scheme(
        SIGNATURE_SCHEME, {"type": "apiKey", "in": "header", "name": signature_header}
    )
    spec.components.security_scheme(
        TWILIO_SIGNATURE_SCHEME, {"type": "apiKey", "in": "header", "name": SIGNATURE_HEADERS["twilio"]}
    )
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.parameter(
        "IdempotencyKey",
        "header",
        {
            "name": "Idempotency-Key",
            "required": require_idempotency_key,
            "description": "Unique per intended operation (1-255 visible ASCII characters); a retry with "
            "the same key and body replays the first response.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7E]+$"},
        },
    )
    spec.components.parameter(
        "RequestId",
        "header",
        {
            "name": "X-Request-ID",
            "required": False,
            "description": "Correlation id echoed in the response; generated when absent.",
            "schema": {"type": "string", "maxLength": 128},
        },
    )
    spec.components.header("RequestId", {"description": "Correlation id", "schema": {"type": "string"}})
    spec.components.header(
        "RetryAfter", {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
    )


class _OperationBuilder:
    """Turns one Route into an OpenAPI operation object."""

    def __init__(self, spec: APISpec, plugin: MarshmallowPlugin, common_errors: tuple[int, ...]) -> None:
        self.spec = spec
        self.plugin = plugin
        self.common_errors = common_errors
        self.tags: list[str] = []

    def operation(self, route: Route) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": [route.tag],
            "security": self._security(route),
            "x-roles": list(route.roles),
            "parameters": self._parameters(route),
            "responses": {str(route.response_status): self._success(route)},
        }
        if route.roles:
            operation["description"] = "Roles: " + ", ".join(route.roles)
        if route.phi_resource:
            operation["x-phi-resource"] = route.phi_resource
        if route.request_schema is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {route.content_type: {"schema": route.request_schema}},
            }
        for status in sorted(set(route.error_statuses) | set(self.common_errors)):
            operation["responses"][str(status)] = self._problem(status)
        return operation

    @staticmethod
    def _security(route: Route) -> list[dict[str, list[str]]]:
        if route.auth == "bearer":
            return [{BEARER_SCHEME: []}]
        if route.auth == "signature":
            return [{TWILIO_SIGNATURE_SCHEME if route.signature == "twilio" else SIGNATURE_SCHEME: []}]
        return []

    def _parameters(self, route: Route) -> list[Any]:
        parameters: list[Any] = [
            {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
            for name in route.path_params
        ]
        if route.query_schema is not None:
            parameters.append({"in": "query", "schema": route.query_schema})
        if route.many and not _declares_paging(route.query_schema):
            parameters.append({"in": "query", "schema": PageQuerySchema})
        parameters.append("RequestId")
        if route.idempotent:
            parameters.append("IdempotencyKey")
        return parameters

    def _success(self, route: Route) -> dict[str, Any]:
        response: dict[str, Any] = {
            "description": HTTPStatus(route.response_status).phrase,
            "headers": {"X-Request-ID": "RequestId"},
        }
        if route.response_schema is not None and route.response_status != 204:
            schema = self._page_ref(route.response_schema) if route.many else route.response_schema
            response["content"] = {"application/json": {"schema": schema}}
        if route.response_media:
            response["content"] = {media: {"schema": {"type": "string", "format": "binary"}}
                                   for media in route.response_media}
        return response

    def _problem(self, status: int) -> dict[str, Any]:
        headers: dict[str, Any] = {"X-Request-ID": "RequestId"}
        if status in RETRY_AFTER_STATUSES:
            headers["Retry-After"] = "RetryAfter"
        return {
            "description": HTTPStatus(status).phrase,
            "headers": headers,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": "Problem"}},
        }

    def _page_ref(self, item_schema: type[Schema]) -> dict[str, str]:
        """Register ``{Item}Page`` = {items: [Item], next_cursor: string|null} and return its $ref."""
        item_ref = self.plugin.converter.resolve_nested_schema(item_schema)
        item_name = item_ref["$ref"].rsplit("/", 1)[-1]
        page_name = f"{item_name}Page"
        if page_name not in self.spec.components.schemas:
            self.spec.components.schema(
                page_name,
                {
                    "type": "object",
                    "required": ["items", "next_cursor"],
                    "properties": {
                        "items": {"type": "array", "items": item_ref},
                        "next_cursor": {"type": "string", "nullable": True},
                    },
                },
            )
        return {"$ref": f"#/components/schemas/{page_name}"}


def _declares_paging(query_schema: type[Schema] | None) -> bool:
    if query_schema is None:
        return False
    declared = query_schema._declared_fields
    return "limit" in declared and "cursor" in declared
