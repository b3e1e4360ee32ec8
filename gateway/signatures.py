"""Webhook routes authenticate by signature, not by bearer token. Each webhook route names its provider's scheme
(``Route.signature``) and has its own signing secret in ``WEBHOOK_SECRETS`` (by operation id):

- ``stripe``: ``Stripe-Signature`` (HMAC-SHA256 over ``timestamp.body``, with a tolerance against replays),
  checked by the real ``stripe`` library;
- ``twilio``: ``X-Twilio-Signature``, base64 HMAC-SHA1 keyed by the account's auth token over the full URL
  Twilio called followed by every form parameter, sorted by name, as name then value."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import stripe

from gateway.problems import ProblemError

SIGNATURE_HEADER = "Stripe-Signature"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"


class BadSignature(ProblemError):
    status, code, title = 401, "bad_signature", "Invalid webhook signature"


class WebhookNotConfigured(ProblemError):
    status, code, title = 503, "webhook_not_configured", "Webhook not configured"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "60"}


def verify_signature(body: bytes, header: str | None, secret: str | None, tolerance_seconds: int = 300) -> None:
    """Raise ``BadSignature`` unless ``header`` signs ``body`` with ``secret`` within the tolerance (Stripe)."""
    if not secret:
        raise WebhookNotConfigured("No signing secret is configured for this webhook.")
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance_seconds)
    except (stripe.SignatureVerificationError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise BadSignature("The webhook signature does not verify.") from exc


def twilio_signature(url: str, params: dict[str, str], auth_token: str) -> str:
    """What Twilio puts in ``X-Twilio-Signature`` for a form POST of ``params`` to ``url``."""
    signed = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()).decode()


def verify_twilio_signature(url: str, body: bytes, header: str | None, secret: str | None) -> None:
    """Raise ``BadSignature`` unless ``header`` is Twilio's signature of this form POST to ``url``."""
    if not secret:
        raise WebhookNotConfigured("No signing secret is configured for this webhook.")
    try:
        params = dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadSignature("The webhook signature does not verify.") from exc
    if not header or not hmac.compare_digest(twilio_signature(url, params, secret), header):
        raise BadSignature("The webhook signature does not verify.")


@dataclass(frozen=True)
class SignedRequest:
    url: str  # the full URL the provider called, as the provider saw it
    headers: dict[str, str]
    body: bytes


Verifier = Callable[[SignedRequest, str | None, int], None]
VERIFIERS: dict[str, Verifier] = {
    "stripe": lambda request, secret, tolerance: verify_signature(
        request.body, request.headers.get(SIGNATURE_HEADER), secret, tolerance),
    "twilio": lambda request, secret, tolerance: verify_twilio_signature(
        request.url, request.body, request.headers.get(TWILIO_SIGNATURE_HEADER), secret),
}
#: The header each scheme signs with (for the OpenAPI document).
SIGNATURE_HEADERS = {"stripe": SIGNATURE_HEADER, "twilio": TWILIO_SIGNATURE_HEADER}
