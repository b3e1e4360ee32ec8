"""Webhook routes authenticate by signature, not by bearer token: Stripe's ``Stripe-Signature`` scheme
(HMAC-SHA256 over ``timestamp.body``, with a tolerance against replays), checked by the real ``stripe``
library. Each webhook route has its own signing secret in ``WEBHOOK_SECRETS`` (by operation id)."""

from __future__ import annotations

import stripe

from gateway.problems import ProblemError

SIGNATURE_HEADER = "Stripe-Signature"


class BadSignature(ProblemError):
    status, code, title = 401, "bad_signature", "Invalid webhook signature"


class WebhookNotConfigured(ProblemError):
    status, code, title = 503, "webhook_not_configured", "Webhook not configured"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "60"}


def verify_signature(body: bytes, header: str | None, secret: str | None, tolerance_seconds: int = 300) -> None:
    """Raise ``BadSignature`` unless ``header`` signs ``body`` with ``secret`` within the tolerance."""
    if not secret:
        raise WebhookNotConfigured("No signing secret is configured for this webhook.")
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance_seconds)
    except (stripe.SignatureVerificationError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise BadSignature("The webhook signature does not verify.") from exc
