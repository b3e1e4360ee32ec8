"""The route table: one declaration per operation drives OpenAPI, authorisation,
idempotency and the PHI audit trail."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from marshmallow import Schema

from gateway.audit import ACTIONS
from gateway.auth import ROLES

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
AUTH_KINDS = ("bearer", "none", "signature")
SIGNATURE_SCHEMES = ("stripe", "twilio")  # gateway.signatures.VERIFIERS
BODY_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DEFAULT_AUDIT_ACTIONS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


@dataclass(frozen=True)
class Route:
    """One HTTP operation of the public API."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    roles: tuple[str, ...] = ()
    request_schema: type[Schema] | None = None
    query_schema: type[Schema] | None = None
    response_schema: type[Schema] | None = None
    response_status: int = 200
    many: bool = False
    errors: tuple[int, ...] = ()
    phi_resource: str | None = None
    idempotent: bool = False
    auth: str = "bearer"
    phi_action: str | None = None
    #: For ``auth="signature"``: whose signature scheme the webhook is checked by.
    signature: str = "stripe"
    #: How the body is encoded: "json", or "form" (application/x-www-form-urlencoded, as Twilio posts).
    body_type: str = "json"
    #: Media types of a success that is not JSON (a PDF, a CSV export): the handler returns a ``Response``.
    response_media: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.method not in METHODS:
            problems.append(f"method must be one of {METHODS}")
        if not self.path.startswith("/"):
            problems.append("path must start with '/'")
        if self.auth not in AUTH_KINDS:
            problems.append(f"auth must be one of {AUTH_KINDS}")
        unknown = set(self.roles) - set(ROLES)
        if unknown:
            problems.append(f"unknown roles {sorted(unknown)}")
        if self.auth == "bearer" and not self.roles:
            problems.append("a bearer route must name the roles allowed to call it")
        if self.auth != "bearer" and self.roles:
            problems.append("only bearer routes have roles")
        if self.signature not in SIGNATURE_SCHEMES:
            problems.append(f"signature must be one of {SIGNATURE_SCHEMES}")
        if self.body_type not in BODY_TYPES:
            problems.append(f"body_type must be one of {sorted(BODY_TYPES)}")
        if self.phi_action is not None and self.phi_action not in ACTIONS:
            problems.append(f"phi_action must be one of {ACTIONS}")
        if self.idempotent and self.method != "POST":
            problems.append("only POST routes take an Idempotency-Key")
        if not 200 <= self.response_status <= 299:
            problems.append("response_status must be a 2xx status")
        if any(not 400 <= status <= 599 for status in self.errors):
            problems.append("errors must be 4xx or 5xx statuses")
        if problems:
            raise ValueError(f"route {self.operation_id}: " + "; ".join(problems))

    @property
    def is_public(self) -> bool:
        return not self.roles

    @property
    def path_params(self) -> tuple[str, ...]:
        """Names of the ``{placeholders}`` in the path, in order."""
        return tuple(_PATH_PARAM.findall(self.path))

    @property
    def audit_action(self) -> str | None:
        """The audit action for this route, or None when it touches no PHI."""
        if self.phi_resource is None:
            return None
        if self.phi_action is not None:
            return self.phi_action
        if self.method == "GET":
            return "list" if self.many else "read"
        return _DEFAULT_AUDIT_ACTIONS[self.method]

    @property
    def error_statuses(self) -> tuple[int, ...]:
        """The declared error statuses plus those the gateway itself may answer for this route."""
        implied: set[int] = set()
        if self.auth == "bearer":
            implied |= {401, 403}
        if self.auth == "signature":
            implied.add(401)
        if self.request_schema is not None:
            implied |= {400, 422}
        if self.query_schema is not None or self.many:
            implied.add(400)
        if self.idempotent:
            implied |= {400, 409, 422}
        return tuple(sorted(implied | set(self.errors)))

    def allows(self, role: str | None) -> bool:
        """Whether a caller with ``role`` may call this route."""
        return self.is_public or role in self.roles

    @property
    def content_type(self) -> str:
        return BODY_TYPES[self.body_type]

    @property
    def werkzeug_rule(self) -> str:
        return werkzeug_rule(self.path)


def werkzeug_rule(path: str) -> str:
    """``/v1/patients/{patient_id}`` -> ``/v1/patients/<string:patient_id>``."""
    return _PATH_PARAM.sub(r"<string:\1>", path)


def index_routes(routes: Iterable[Route]) -> dict[str, Route]:
    """Routes by operation id; refuses duplicate operation ids and two routes for one method and path."""
    by_operation: dict[str, Route] = {}
    seen: set[tuple[str, str]] = set()
    for route in routes:
        endpoint = (route.method, _PATH_PARAM.sub("{}", route.path))  # parameter names do not matter
        if route.operation_id in by_operation:
            raise ValueError(f"duplicate operation_id {route.operation_id}")
        if endpoint in seen:
            raise ValueError(f"duplicate route {route.method} {route.path}")
        by_operation[route.operation_id] = route
        seen.add(endpoint)
    return by_operation
