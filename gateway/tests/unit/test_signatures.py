"""Webhook signatures: only a body signed with the route's secret, recently, is accepted."""

import time
from urllib.parse import urlencode

import pytest
import stripe

from gateway.signatures import (
    BadSignature,
    WebhookNotConfigured,
    twilio_signature,
    verify_signature,
    verify_twilio_signature,
)

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


# Twilio: base64 HMAC-SHA1 of the URL followed by the sorted form fields (name then value), keyed by the auth token.
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_FORM = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030",
               "To": "+18005551212"}


def test_twilio_signatures_are_computed_as_twilio_documents_them():
    assert twilio_signature(TWILIO_URL, TWILIO_FORM, "12345") == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="  # Twilio's example


def test_a_form_signed_by_twilio_is_accepted_whatever_the_order_of_its_fields():
    body = urlencode(dict(reversed(list(TWILIO_FORM.items())))).encode()
    verify_twilio_signature(TWILIO_URL, body, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "12345")


@pytest.mark.parametrize(("url", "body", "header", "token"), [
    (TWILIO_URL, urlencode({**TWILIO_FORM, "Digits": "9999"}).encode(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "12345"),
    ("https://mycompany.com/other.php?foo=1&bar=2", urlencode(TWILIO_FORM).encode(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
     "12345"),
    (TWILIO_URL, urlencode(TWILIO_FORM).encode(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "54321"),
    (TWILIO_URL, urlencode(TWILIO_FORM).encode(), None, "12345"),
    (TWILIO_URL, b"\xff\xfe", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "12345"),
])
def test_a_twilio_form_changed_or_signed_otherwise_is_refused(url, body, header, token):
    with pytest.raises(BadSignature):
        verify_twilio_signature(url, body, header, token)


def test_a_twilio_webhook_without_a_token_is_not_configured():
    with pytest.raises(WebhookNotConfigured):
        verify_twilio_signature(TWILIO_URL, b"", "x", None)
