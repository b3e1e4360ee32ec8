"""The gateway's HTTP entrypoint: everything every route needs, done once, driven by the route table.

For each request, in order: a request id (``X-Request-ID``, made if absent); the bearer token checked
(issuer, audience, expiry) and the caller's role against the route's roles; the rate limit of that client
on that route; the body (size limit, JSON, the route's schema with unknown fields refused) and the query;
the ``Idempotency-Key`` (a replay returns the first response); then the handler, in a Nameko worker whose
correlation id is the request id, so it follows every RPC and event. A route touching health data writes its
audit entry (who, what, when, from where) once the caller is known and before anything else happens: if
that write fails, the answer is 503 and nothing was touched. On the routes that create, the worker
also carries an operation key (from the ``Idempotency-Key``, else made for this request): the services
derive the ids of what they create from it, so the same operation executed twice creates once.
Afterwards: the audit entry's outcome (filled in once; if that write fails the answer is still given, the
failure logged at ERROR and counted), metrics, and the response headers (request id, rate limit, CORS).

Errors are turned into ``application/problem+json`` in one table (``problem_for``): the gateway's own
``ProblemError``\\s, the services' domain errors (which cross RPC with their status and code), timeouts
(504 with Retry-After), the gateway's store out of reach (503 ``store_unavailable`` with Retry-After), and
anything unexpected (500, logged, with the request id).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from http import HTTPStatus
from typing import Any

from eventlet.event import Event
from kombu import Connection
from marshmallow import RAISE, ValidationError
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from pymongo.errors import ConnectionFailure
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from chassis.errors import DomainError
from chassis.logs import CORRELATION_KEY, OPERATION_KEY
from chassis.store import connect
from gateway.audit import AuditEntry, AuditLog
from gateway.auth import AuthSettings, Principal, authenticate
from gateway.clients import TrustedProxies
from gateway.idempotency import IdempotencyStore, InProgress, Mismatch, Proceed, Replay
from gateway.metrics import GatewayMetrics
from gateway.problems import ProblemError, problem, validation_errors
from gateway.ratelimit import RateLimiter, RateLimitRule
from gateway.routes import Route
from gateway.signatures import SIGNATURE_HEADER, verify_signature

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
ANONYMOUS = "anonymous"
UPSTREAM_FAILURES = (503, 504)
STORE_RETRY_AFTER_SECONDS = 5
ALLOWED_REQUEST_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID"


# --- errors the gateway itself raises -------------------------------------------------------------

class Forbidden(ProblemError):
    status, code, title = 403, "forbidden", "Forbidden"


class MalformedBody(ProblemError):
    status, code, title = 400, "malformed_json", "Malformed JSON body"


class InvalidQuery(ProblemError):
    status, code, title = 400, "invalid_query", "Invalid query parameters"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("The query string has invalid parameters.")
        self.errors = errors


class InvalidBody(ProblemError):
    status, code, title = 422, "validation_failed", "Validation failed"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("The request body has invalid fields.")
        self.errors = errors


class BodyTooLarge(ProblemError):
    status, code, title = 413, "body_too_large", "Request body too large"


class UnsupportedMediaType(ProblemError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class IdempotencyKeyReused(ProblemError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key reused with another body"


class RequestInProgress(ProblemError):
    status, code, title = 409, "request_in_progress", "A request with this Idempotency-Key is in progress"

    def __init__(self, retry_after: int) -> None:
        super().__init__("Retry once the first request has finished.")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class AuditUnavailable(ProblemError):
    status, code, title = 503, "audit_unavailable", "Service Unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class RateLimited(ProblemError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("Slow down: this client has used its budget for this route.")
        self._headers = headers

    def headers(self) -> dict[str, str]:
        return self._headers


def problem_for(exc: BaseException, request_id: str) -> tuple[int, dict[str, str], str]:
    """The one table from exception to problem response."""
    if isinstance(exc, ProblemError):
        return exc.to_problem(request_id)
    if isinstance(exc, DomainError):
        field_errors = exc.details.get("errors")
        if field_errors:  # InvalidInput, raised here or by a service (RemoteDomainError keeps its details)
            return problem(exc.status, exc.code, "Validation failed", exc.detail, request_id,
                           validation_errors(field_errors))
        extra = {k: v for k, v in exc.details.items() if k not in ("errors", "retry_after") and _is_json(v)}
        status, headers, body = problem(exc.status, exc.code, HTTPStatus(exc.status).phrase, exc.detail,
                                        request_id, **extra)
        if exc.status in UPSTREAM_FAILURES:  # also when relayed by another service
            headers["Retry-After"] = str(exc.details.get("retry_after") or 5)
        return status, headers, body
    if isinstance(exc, ConnectionFailure):  # the gateway's own store (rate limits, keys, audit) out of reach
        log.warning("the gateway's store did not answer request %s: %s", request_id, exc)
        status, headers, body = problem(503, "store_unavailable", "Service Unavailable",
                                        "Our data store is not answering; try again shortly.", request_id)
        return status, {**headers, "Retry-After": str(STORE_RETRY_AFTER_SECONDS)}, body
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        return problem(status, HTTPStatus(status).phrase.lower().replace(" ", "_"), HTTPStatus(status).phrase,
                       exc.description, request_id)
    log.error("unexpected error answering request %s", request_id, exc_info=exc)
    return problem(500, "internal_error", "Internal server error",
                   "Something went wrong on our side; quote the request id if you contact us.", request_id)


def _created_id(body: bytes) -> str | None:
    try:
        created = json.loads(body)
    except ValueError:
        return None
    return created.get("id") if isinstance(created, dict) and isinstance(created.get("id"), str) else None


def _is_json(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict) or value is None


# --- what a handler receives -------------------------------------------------------------------------

@dataclass
class ApiRequest:
    route: Route
    request_id: str
    principal: Principal | None
    body: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    ip: str | None = None
    user_agent: str | None = None
    #: The PHI record this request touches, for the audit log: the path's id, or what the handler created.
    resource_id: str | None = None

    @property
    def subject(self) -> str:
        return self.principal.subject if self.principal else ANONYMOUS

    @property
    def role(self) -> str:
        return self.principal.role if self.principal else ANONYMOUS

    @property
    def client_id(self) -> str:
        """Whose budget and idempotency keys these are: the token's subject, else the client's address."""
        return self.principal.subject if self.principal else f"ip:{self.ip}"


def to_json(payload: Any) -> str:
    return json.dumps(payload, default=_json_default, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --- shared state: store, limits, audit, metrics, CORS ---------------------------------------------

def _rule(text: str) -> RateLimitRule:
    limit, _, window = str(text).partition("/")
    return RateLimitRule(int(limit), int(window or 60))


def _lease_seconds(config: dict[str, Any]) -> int:
    """How long a claimed ``Idempotency-Key`` stays pending: longer than any RPC its handler waits for."""
    lease = int(config.get("IDEMPOTENCY_LEASE_SECONDS", 30))
    rpc_timeout = float(config.get("RPC_TIMEOUT_SECONDS", 10))
    if lease <= rpc_timeout:
        raise ValueError(f"IDEMPOTENCY_LEASE_SECONDS ({lease}) must exceed RPC_TIMEOUT_SECONDS ({rpc_timeout:g}): "
                         "a retry may not take over a request that is still running")
    return lease


class GatewayRuntime(SharedExtension):
    """The gateway's own state, shared by every route of one gateway process."""

    def setup(self) -> None:
        config = self.container.config
        self.client, self.db = connect(config, "gateway")
        self.auth = AuthSettings.from_config(config)
        self.idempotency = IdempotencyStore(self.db, lease_seconds=_lease_seconds(config),
                                            retention_hours=int(config.get("IDEMPOTENCY_RETENTION_HOURS", 24)))
        self.rate_limiter = RateLimiter(
            self.db, _rule(config.get("RATE_LIMIT_DEFAULT", "300/60")),
            {route: _rule(rule) for route, rule in (config.get("RATE_LIMIT_ROUTES") or {}).items()})
        self.audit = AuditLog(self.db)
        self.metrics = GatewayMetrics()
        self.max_body_bytes = int(config.get("MAX_BODY_BYTES", 65536))
        self.cors_origins = frozenset(config.get("CORS_ORIGINS") or ())
        self.webhook_secrets = dict(config.get("WEBHOOK_SECRETS") or {})
        self.webhook_tolerance_seconds = int(config.get("WEBHOOK_TOLERANCE_SECONDS", 300))
        self.trusted_proxies = TrustedProxies.parse(config.get("TRUSTED_PROXIES"))

    def stop(self) -> None:
        self.client.close()
        super().stop()

    def ping_broker(self) -> None:
        with Connection(self.container.config["AMQP_URI"], connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)

    def ping_store(self) -> None:
        self.db.command("ping")

    def cors_headers(self, origin: str | None) -> dict[str, str]:
        if not origin or origin not in self.cors_origins:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Expose-Headers": "X-Request-ID, Retry-After, RateLimit-Limit, RateLimit-Remaining, "
                                                 "RateLimit-Reset, Idempotent-Replayed"}


class GatewayState(DependencyProvider):
    """Gives handlers the same shared runtime the entrypoints use."""

    runtime = GatewayRuntime()

    def get_dependency(self, worker_ctx: Any) -> GatewayRuntime:
        return self.runtime


class ApiWebServer(WebServer):
    """Nameko's web server, answering unknown paths, wrong methods and CORS preflights the API's way."""

    runtime = GatewayRuntime()

    def get_wsgi_app(self) -> WsgiApp:
        return ApiWsgiApp(self)


class ApiWsgiApp(WsgiApp):
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            # eventlet's input ends with the last chunk; say so, or werkzeug reads a chunked body as empty
            environ["wsgi.input_terminated"] = True
        request = Request(environ, shallow=True)
        request_id = request_id_of(request)
        request.request_id = request_id
        adapter = self.url_map.bind_to_environ(environ)
        runtime = self.server.runtime
        try:
            if request.method == "OPTIONS":
                response = self._preflight(request, adapter.allowed_methods())
            else:
                provider, values = adapter.match()
                request.path_values = values
                response = provider.handle_request(request)
        except HTTPException as exc:
            status, headers, body = problem_for(exc, request_id)
            if exc.code == 405:
                headers["Allow"] = ", ".join(sorted(adapter.allowed_methods()))
            response = Response(body, status=status, headers=headers)
        response.headers["X-Request-ID"] = request_id
        for name, value in runtime.cors_headers(request.headers.get("Origin")).items():
            response.headers[name] = value
        return response(environ, start_response)

    def _preflight(self, request: Request, allowed: list[str]) -> Response:
        if not allowed:
            status, headers, body = problem(404, "not_found", "Not Found", "No such path.", request.request_id)
            return Response(body, status=status, headers=headers)
        response = Response(status=204)
        if self.server.runtime.cors_headers(request.headers.get("Origin")):
            response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(set(allowed) | {"OPTIONS"}))
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_REQUEST_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        return response


def request_id_of(request: Request) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if _REQUEST_ID.match(given) else f"req_{uuid.uuid4().hex}"


# --- the entrypoint ------------------------------------------------------------------------------------

class ApiEntrypoint(HttpRequestHandler):
    server = ApiWebServer()
    runtime = GatewayRuntime()  # shared: the same instance as the server's and the handlers'

    def __init__(self, route: Route, **kwargs: Any) -> None:
        self.route = route
        super().__init__(route.method, route.werkzeug_rule, **kwargs)

    def handle_request(self, request: Request) -> Response:
        request.shallow = False  # the WSGI app built it shallow, to route it without reading the body
        started = time.monotonic()
        request_id: str = request.request_id
        client_address = self.runtime.trusted_proxies.client_address(
            request.remote_addr, request.headers.getlist("X-Forwarded-For"))
        api_request = ApiRequest(self.route, request_id, None, ip=client_address,
                                 user_agent=request.headers.get("User-Agent"),
                                 resource_id=next(iter(request.path_values.values()), None))
        extra_headers: dict[str, str] = {}
        record_id: str | None = None
        audit_entry: str | None = None
        try:
            raw_body = self._read_body(request)
            api_request.principal = self._authenticate(request, raw_body)
            audit_entry = self._audit_access(api_request)
            decision = self.runtime.rate_limiter.hit(api_request.client_id, self.route.operation_id)
            extra_headers.update(decision.headers())
            if not decision.allowed:
                raise RateLimited(decision.headers())
            if not self.route.allows(api_request.role if api_request.principal else None):
                raise Forbidden(f"The {api_request.role} role may not call {self.route.operation_id}.")
            api_request.body = self._load_body(raw_body)
            api_request.query = self._load_query(request)
            claim = self._claim_idempotency_key(request, api_request, raw_body)
            if isinstance(claim, Response):
                return self._finish(claim, api_request, started, audit_entry)
            record_id = claim.record_id if claim else None
            status, headers, body = self._run_handler(api_request, request.path_values,
                                                      self._operation_key(claim))
        except Exception as exc:
            if isinstance(exc, DomainError) and exc.status in UPSTREAM_FAILURES:
                self.runtime.metrics.rpc_error(exc.details.get("service", "unknown"),
                                               "timeout" if exc.status == 504 else "unavailable")
            status, headers, body = problem_for(exc, request_id)
        if record_id is not None and status < 500:
            # A 5xx (a timeout above all) may follow work that was done: the key stays pending until its lease
            # ends, and the retry that takes it over runs with the same operation key.
            self._complete_idempotency_key(record_id, status, headers, body)
        response = Response(body, status=status, headers={**extra_headers, **headers})
        return self._finish(response, api_request, started, audit_entry)

    def _claim_idempotency_key(self, request: Request, api_request: ApiRequest,
                               raw_body: bytes) -> Response | Proceed | None:
        """With an ``Idempotency-Key``: the first answer to replay, or the claim to complete once answered."""
        key = request.headers.get("Idempotency-Key")
        if not self.route.idempotent or key is None:
            return None
        outcome = self.runtime.idempotency.begin(key, api_request.client_id, self.route.operation_id, raw_body)
        if isinstance(outcome, Replay):
            api_request.resource_id = api_request.resource_id or _created_id(outcome.body)
            return Response(outcome.body, status=outcome.status,
                            headers={**outcome.headers, "Idempotent-Replayed": "true"})
        if isinstance(outcome, Mismatch):
            raise IdempotencyKeyReused("This Idempotency-Key was used with a different request body.")
        if isinstance(outcome, InProgress):
            raise RequestInProgress(outcome.retry_after_seconds)
        assert isinstance(outcome, Proceed)
        return outcome

    def _complete_idempotency_key(self, record_id: str, status: int, headers: dict[str, str], body: str) -> None:
        """Keep the answer for replay; if the store fails now, answer anyway: the key stays pending, and a retry
        after its lease runs again with the same operation key, which finds what this request made."""
        try:
            self.runtime.idempotency.complete(record_id, status, headers, body)
        except Exception:
            log.exception("could not keep the answer to idempotency record %s", record_id)

    def _operation_key(self, claim: Proceed | None) -> str | None:
        """What the services recognise this operation by: the same for every retry under one key (never the
        client's ``X-Request-ID``, which any request may reuse), else one made for this request alone."""
        if not self.route.idempotent:
            return None
        return claim.operation_key if claim else f"op_{uuid.uuid4().hex}"

    def _authenticate(self, request: Request, raw_body: bytes) -> Principal | None:
        if self.route.auth == "signature":
            verify_signature(raw_body, request.headers.get(SIGNATURE_HEADER),
                             self.runtime.webhook_secrets.get(self.route.operation_id),
                             self.runtime.webhook_tolerance_seconds)
            return Principal(subject=f"webhook:{self.route.operation_id}", role="webhook")
        if self.route.auth != "bearer":
            return None
        return authenticate(self.runtime.auth, request.headers.get("Authorization"))

    @property
    def _takes_body(self) -> bool:
        return self.route.request_schema is not None or self.route.auth == "signature"

    def _read_body(self, request: Request) -> bytes:
        if not self._takes_body:
            return b""
        limit = self.runtime.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge(f"The body may not exceed {limit} bytes.")
        request.max_content_length = limit
        mimetype = request.mimetype
        if mimetype and mimetype != "application/json":
            raise UnsupportedMediaType("Send the body as application/json.")
        try:
            return request.get_data(cache=True)
        except HTTPException as exc:
            raise BodyTooLarge(f"The body may not exceed {limit} bytes.") from exc

    def _load_body(self, raw_body: bytes) -> dict[str, Any]:
        """The body as the route's schema loads it (a webhook without a schema: the JSON object as sent)."""
        if not self._takes_body:
            return {}
        try:
            document = json.loads(raw_body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedBody("The body is not valid JSON.") from exc
        if not isinstance(document, dict):
            raise InvalidBody([{"field": "", "reason": "The body must be a JSON object."}])
        if self.route.request_schema is None:
            return document
        try:
            return self.route.request_schema().load(document, unknown=RAISE)
        except ValidationError as exc:
            raise InvalidBody(validation_errors(exc.messages)) from exc

    def _load_query(self, request: Request) -> dict[str, Any]:
        if self.route.query_schema is None:
            if request.args:
                raise InvalidQuery([{"field": name, "reason": "Unknown field."} for name in request.args])
            return {}
        repeated = [name for name in request.args if len(request.args.getlist(name)) > 1]
        if repeated:
            raise InvalidQuery([{"field": name, "reason": "Give this parameter once."} for name in repeated])
        try:
            return self.route.query_schema().load(request.args.to_dict(), unknown=RAISE)
        except ValidationError as exc:
            raise InvalidQuery(validation_errors(exc.messages)) from exc

    def _run_handler(self, api_request: ApiRequest, path_values: dict[str, Any],
                     operation_key: str | None) -> tuple[int, dict[str, str], str]:
        done = Event()
        context_data = {CORRELATION_KEY: api_request.request_id}
        if operation_key is not None:
            context_data[OPERATION_KEY] = operation_key  # nameko copies context data into every RPC's headers
        self.container.spawn_worker(self, (api_request,), dict(path_values), context_data=context_data,
                                    handle_result=partial(self.handle_result, done))
        result, exc_info = done.wait()
        if exc_info is not None:
            raise exc_info[1]
        if isinstance(result, Response):
            return result.status_code, dict(result.headers), result.get_data(as_text=True)
        return self.route.response_status, {"Content-Type": "application/json"}, to_json(result)

    def handle_result(self, event: Event, worker_ctx: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        event.send((result, exc_info))
        return result, exc_info

    def _audit_access(self, api_request: ApiRequest) -> str | None:
        """The audit entry of a request touching health data, written before the access; None for other routes."""
        if not (self.route.phi_resource and self.route.audit_action):
            return None
        try:
            return self.runtime.audit.record(AuditEntry(
                subject=api_request.subject, role=api_request.role, action=self.route.audit_action,
                resource=self.route.phi_resource, resource_id=api_request.resource_id, ip=api_request.ip,
                user_agent=api_request.user_agent, request_id=api_request.request_id))
        except ConnectionFailure:
            raise  # the whole store is out of reach: 503 store_unavailable, like every other route
        except Exception as exc:
            # No unaudited access to health data: nothing has been touched yet, and nothing will be.
            log.exception("could not write the audit entry of request %s", api_request.request_id)
            raise AuditUnavailable("The request could not be recorded; try again.") from exc

    def _finish(self, response: Response, api_request: ApiRequest, started: float, audit_entry: str | None) -> Response:
        if audit_entry is not None:
            try:
                self.runtime.audit.conclude(audit_entry, response.status_code, api_request.resource_id)
            except Exception:
                # The access is on record already; the answer (a booking that exists, say) is not withheld.
                log.exception("could not record the outcome of request %s in its audit entry %s",
                              api_request.request_id, audit_entry)
                self.runtime.metrics.audit_failure()
        self.runtime.metrics.observe(self.route.operation_id, self.route.method, response.status_code,
                                     time.monotonic() - started)
        return response


api = ApiEntrypoint.decorator
