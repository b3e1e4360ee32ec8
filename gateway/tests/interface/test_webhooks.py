"""A webhook route authenticates by its signature instead of a bearer token (Stripe's scheme).

No webhook is part of the API yet (Stripe's arrives with billing), so a small service declares one
through the same entrypoint the gateway uses: everything else (errors, audit, metrics) comes with it.
"""

from __future__ import annotations

import json

import pytest
import requests
import stripe
from nameko.testing.utils import find_free_port

from chassis.service import ServiceBase
from gateway.api import ApiRequest, GatewayState, api
from gateway.routes import Route

SECRET = "whsec_interface_test_secret"
PAYMENT_SUCCEEDED = Route("POST", "/v1/webhooks/payments", "paymentWebhook", "A payment provider's event",
                          "webhooks", auth="signature")


class WebhookReceiver(ServiceBase):
    name = "gateway"
    state = GatewayState()

    @api(PAYMENT_SUCCEEDED)
    def payment_webhook(self, request: ApiRequest) -> dict:
        return {"received": request.body["id"], "caller": request.subject}


@pytest.fixture
def webhook_url(container_factory, service_config):
    address = f"127.0.0.1:{find_free_port()}"
    container = container_factory(WebhookReceiver, {
        **service_config, "WEB_SERVER_ADDRESS": address, "JWT_SECRET": "x" * 40,
        "WEBHOOK_SECRETS": {"paymentWebhook": SECRET}})
    container.start()
    return f"http://{address}{PAYMENT_SUCCEEDED.path}"


def post(url: str, body: dict, secret: str = SECRET, tamper: bool = False) -> requests.Response:
    payload = json.dumps(body)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret)
    if tamper:
        payload = payload.replace("evt_", "evt_x")
    return requests.post(url, data=payload, headers={"Stripe-Signature": header,
                                                      "Content-Type": "application/json"})


def test_a_signed_webhook_is_accepted_without_a_bearer_token(webhook_url):
    answer = post(webhook_url, {"id": "evt_1", "type": "payment_intent.succeeded"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": "evt_1", "caller": "webhook:paymentWebhook"}


@pytest.mark.parametrize("how", ["other secret", "tampered body", "no signature"])
def test_an_unsigned_or_wrongly_signed_webhook_is_refused(webhook_url, how):
    body = {"id": "evt_2", "type": "payment_intent.succeeded"}
    if how == "no signature":
        answer = requests.post(webhook_url, json=body)
    else:
        answer = post(webhook_url, body, secret="whsec_other" if how == "other secret" else SECRET,
                      tamper=how == "tampered body")
    assert answer.status_code == 401
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["code"] == "bad_signature"
