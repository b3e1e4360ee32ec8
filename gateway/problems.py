"""RFC 9457 problem details: the single error shape every gateway response uses.

Every exception that should reach the client as a 4xx carries its own status and
code by subclassing :class:`ProblemError`, so the gateway turns any of them into a
response with one ``except`` clause.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from marshmallow import INCLUDE, Schema, fields

PROBLEM_CONTENT_TYPE = "application/problem+json"

# Field name used for errors that concern the whole document rather than one field.
WHOLE_DOCUMENT = ""


class FieldErrorSchema(Schema):
    """One invalid field of a request."""

    field = fields.String(required=True, metadata={"description": "Dotted path, '' for the whole body"})
    reason = fields.String(required=True)


class ProblemSchema(Schema):
    """Body of every error response (``application/problem+json``); may carry extension members."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, metadata={"example": "about:blank"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"description": "Stable machine-readable error code"})
    detail = fields.String()
    request_id = fields.String()
    errors = fields.List(fields.Nested(FieldErrorSchema))


class ProblemError(Exception):
    """Base for errors that map to a problem response; subclasses set the class attributes."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        """Extra response headers this error calls for (e.g. WWW-Authenticate)."""
        return {}

    #: Field errors (``[{"field", "reason"}]``) for errors about invalid input; None for the others.
    errors: list[dict[str, str]] | None = None

    def to_problem(self, request_id: str | None = None) -> tuple[int, dict[str, str], str]:
        """Render this error as ``(status, headers, body)``."""
        status, headers, body = problem(self.status, self.code, self.title, self.detail, request_id, self.errors)
        return status, {**headers, **self.headers()}, body


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    request_id: str | None = None,
    errors: list[dict[str, str]] | None = None,
    **extra: Any,
) -> tuple[int, dict[str, str], str]:
    """Build a problem response: ``(status, headers, json_body)``.

    Absent optional members (``detail``, ``request_id``, ``errors``) are left out of
    the body. ``extra`` adds extension members, and may override ``type``.
    """
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "code": code}
    if detail is not None:
        body["detail"] = detail
    if request_id is not None:
        body["request_id"] = request_id
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    headers = {"Content-Type": PROBLEM_CONTENT_TYPE}
    return status, headers, json.dumps(body, separators=(",", ":"), default=str)


def validation_errors(messages: Mapping[Any, Any] | list[Any] | str) -> list[dict[str, str]]:
    """Flatten marshmallow's nested ``ValidationError.messages`` into field/reason pairs.

    ``{"address": {"zip": ["Missing data."]}}`` becomes
    ``[{"field": "address.zip", "reason": "Missing data."}]``. List indexes become path
    segments (``items.0.dose``); ``_schema`` errors belong to the enclosing object.
    """
    flat: list[dict[str, str]] = []
    _flatten(messages, [], flat)
    return flat


def _flatten(messages: Any, path: list[str], flat: list[dict[str, str]]) -> None:
    if isinstance(messages, Mapping):
        for key, nested in messages.items():
            segment = [] if key == "_schema" else [str(key)]
            _flatten(nested, path + segment, flat)
    elif isinstance(messages, (list, tuple)):
        for item in messages:
            _flatten(item, path, flat)
    else:
        field = ".".join(path) if path else WHOLE_DOCUMENT
        flat.append({"field": field, "reason": str(messages)})
