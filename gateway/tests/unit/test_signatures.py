"""Webhook signatures: only a body signed with the route's secret, recently, is accepted."""

import time

import pytest
import stripe

from gateway.signatures import BadSignature, WebhookNotConfigured, verify_signature

SECRET = "whsec_test_0123456789"
BODY = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'


def signed(body: bytes = BODY, secret: str = SECRET, at: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=at)


def test_a_body_signed_with_the_routes_secret_is_accepted():
    verify_signature(BODY, signed(), SECRET)


@pytest.mark.parametrize("header", [
    None,
    "",
    "garbage",
    "t=notanumber,v1=abc",
    signed(secret="whsec_someone_else"),
    signed(body=b'{"id": "evt_1", "type": "charge.refunded"}'),   # the body was changed after signing
    signed(at=int(time.time()) - 3600),                             # an old signature replayed
])
def test_anything_else_is_refused_with_401(header):
    with pytest.raises(BadSignature) as refused:
        verify_signature(BODY, header, SECRET, tolerance_seconds=300)
    assert (refused.value.status, refused.value.code) == (401, "bad_signature")


def test_a_webhook_without_a_configured_secret_is_unavailable_not_open():
    with pytest.raises(WebhookNotConfigured) as refused:
        verify_signature(BODY, signed(), None)
    assert refused.value.status == 503
