"""Typed errors that services raise and the gateway maps to HTTP, in one table.

A service raises a subclass of one of the categories below (``PatientNotFound(NotFound)``). The error
crosses RPC with its status, code and details (see ``chassis.rpc``) and the gateway turns it into
``application/problem+json`` without knowing the service's exception classes.
"""

from __future__ import annotations

from typing import Any

DOMAIN_ERROR_MARKER = "__domain_error__"


class DomainError(Exception):
    """An expected failure of a use case, reported to the caller rather than logged as a crash."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, detail: str, **details: Any) -> None:
        super().__init__(detail, {DOMAIN_ERROR_MARKER: True, "status": self.status, "code": self.code,
                                  "details": details})
        self.detail = detail
        self.details = details

    def __str__(self) -> str:
        return self.detail


class InvalidInput(DomainError):
    status = 422
    code = "invalid_input"

    def __init__(self, detail: str, errors: dict[str, Any] | None = None, **details: Any) -> None:
        super().__init__(detail, errors=errors or {}, **details)


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class NotAllowed(DomainError):
    """The request is well formed but a business rule refuses it."""

    status = 422
    code = "not_allowed"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Unavailable(DomainError):
    status = 503
    code = "service_unavailable"


class RemoteDomainError(DomainError):
    """A domain error raised by another service, re-raised by the caller's RPC proxy."""

    def __init__(self, exc_type: str, status: int, code: str, detail: str, details: dict[str, Any]) -> None:
        self.status = status
        self.code = code
        self.exc_type = exc_type
        super().__init__(detail, **details)


class ServiceTimeout(Unavailable):
    """A service did not answer an RPC within its timeout."""

    status = 504
    code = "service_timeout"


class ServiceUnavailable(Unavailable):
    status = 503
    code = "service_unavailable"


class NotYet(Exception):
    """An event handler cannot act *yet*: a fact it depends on has not arrived (events come in any order).

    The subscriber retries it on the long backoff schedule (``EVENT_RETRY_SCHEDULE``), logged as waiting,
    not as a failure. Example: a booking confirmation that arrives before the patient's contact details.
    """


class Rejected(Exception):
    """An event handler can *never* act on this event as it is (invalid, contradicts the domain).

    The subscriber sends it to the dead-letter queue at once instead of retrying it for hours.
    """
