"""The Stripe stand-in answers the calls billing makes as Stripe does, through the official ``stripe`` library:
the first answer kept per idempotency key, a lost answer or a hang followed by a retry charging once, 3-D Secure
and declines, off-session charges on a saved card, refunds and balance transactions, and webhooks signed as
Stripe signs them, delivered several times and newest first when asked, and again while the endpoint does not
take them."""

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import stripe

from chassis.testing import wait_for

DEPOSIT = {"amount": 15000, "currency": "usd", "payment_method_types": ["card"], "confirm": True,
           "setup_future_usage": "off_session"}


@pytest.fixture
def customer(stripe_client):
    return stripe_client.v1.customers.create(params={"name": "Ana Test", "email": "ana@example.com"})


def deposit(client, customer, payment_method="pm_card_visa", key=None, **extra):
    params = {**DEPOSIT, "customer": customer.id, "payment_method": payment_method, **extra}
    return client.v1.payment_intents.create(params=params, options={"idempotency_key": key} if key else {})


def charges_for(client, customer) -> int:
    return len(client.v1.charges.list(params={"customer": customer.id, "limit": 100}).data)


def test_the_same_idempotency_key_replays_the_first_answer_and_another_body_is_refused(stripe_client, customer):
    first = deposit(stripe_client, customer, key="deposit:hld_same")
    again = deposit(stripe_client, customer, key="deposit:hld_same")

    assert again.id == first.id and again.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        deposit(stripe_client, customer, key="deposit:hld_same", amount=99900)
    assert charges_for(stripe_client, customer) == 1


@pytest.mark.parametrize("fault", [
    {"kind": "lose_answer"},                 # charged, the answer lost: the retry gets the kept answer
    {"kind": "hang", "seconds": 3},          # past the client's 2 s timeout: the retry charges, the late one replays
    {"kind": "error"},                       # a 500 before anything: the retry charges
])
def test_a_fault_then_the_librarys_retry_charges_once(stripe_client, stripe_control, customer, fault):
    stripe_control("double/faults", {"path": "/v1/payment_intents", **fault})

    intent = deposit(stripe_client, customer, key=f"deposit:hld_{fault['kind']}")

    assert intent.status == "succeeded"
    time.sleep(fault.get("seconds", 0) + 0.5 if fault["kind"] == "hang" else 0)  # let the late request finish
    assert charges_for(stripe_client, customer) == 1


def test_a_card_needing_3d_secure_asks_for_action_and_a_declined_card_is_a_card_error(stripe_client, customer):
    challenged = deposit(stripe_client, customer, "pm_card_threeDSecure2Required")
    assert challenged.status == "requires_action" and challenged.client_secret

    with pytest.raises(stripe.CardError) as declined:
        deposit(stripe_client, customer, "pm_card_chargeDeclined")
    assert declined.value.code == "card_declined"


def test_a_saved_card_is_charged_off_session_and_one_needing_authentication_fails(stripe_client, customer):
    saved = deposit(stripe_client, customer)
    assert saved.setup_future_usage == "off_session"
    balance = stripe_client.v1.payment_intents.create(params={
        "amount": 45000, "currency": "usd", "customer": customer.id, "payment_method": saved.payment_method,
        "payment_method_types": ["card"], "confirm": True, "off_session": True})
    assert balance.status == "succeeded"

    needs_auth = stripe_client.v1.payment_intents.create(params={
        "amount": 100, "currency": "usd", "customer": customer.id, "payment_method": "pm_card_threeDSecure2Required",
        "payment_method_types": ["card"]})
    with pytest.raises(stripe.CardError) as refused:
        stripe_client.v1.payment_intents.create(params={
            "amount": 45000, "currency": "usd", "customer": customer.id, "payment_method": needs_auth.payment_method,
            "payment_method_types": ["card"], "confirm": True, "off_session": True})
    assert refused.value.code == "authentication_required"


def test_a_refund_is_a_negative_balance_transaction(stripe_client, customer):
    paid = deposit(stripe_client, customer)
    refund = stripe_client.v1.refunds.create(params={"payment_intent": paid.id, "amount": 5000},
                                             options={"idempotency_key": f"refund:test:{paid.id}"})

    assert refund.status == "succeeded"
    moves = {txn.source: txn.amount for txn in stripe_client.v1.balance_transactions.list(params={"limit": 100})}
    assert moves[refund.id] == -5000


class Receiver(BaseHTTPRequestHandler):
    received: list = []
    refuse_next = 0  # answer 503 to that many deliveries (an endpoint down for a while)

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.refuse_next > 0:
            Receiver.refuse_next -= 1
            self.send_response(503)
            self.end_headers()
            return
        event = stripe.Webhook.construct_event(body, self.headers["Stripe-Signature"], "whsec_test")
        about = event.data.object.to_dict()
        Receiver.received.append((event.id, event.type, about.get("payment_intent") or about["id"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_receiver(stripe_control):
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    Receiver.refuse_next = 0
    stripe_control("webhooks/test", {"url": f"http://127.0.0.1:{server.server_port}/", "secret": "whsec_test"})
    yield Receiver.received
    server.shutdown()


def test_webhooks_are_signed_and_can_arrive_three_times_newest_first(stripe_client, stripe_control, customer,
                                                                     webhook_receiver):
    stripe_control("double/webhooks", {"duplicates": 3, "newest_first": True, "batch_seconds": 0.5})
    paid = deposit(stripe_client, customer)
    stripe_client.v1.refunds.create(params={"payment_intent": paid.id})

    def ours():
        return [(event_id, kind) for event_id, kind, about in webhook_receiver if about == paid.id]

    wait_for(lambda: len(ours()) == 6)
    assert [kind for _, kind in ours()] == ["charge.refunded"] * 3 + ["payment_intent.succeeded"] * 3
    assert len({event_id for event_id, _ in ours()}) == 2


def test_a_webhook_the_endpoint_did_not_take_is_delivered_again_later(stripe_client, stripe_control, customer,
                                                                      webhook_receiver):
    stripe_control("double/webhooks", {"retry_seconds": 0.3})
    Receiver.refuse_next = 2  # the endpoint is down for the first delivery and the first retry
    paid = deposit(stripe_client, customer)

    delivered = wait_for(lambda: [kind for _, kind, about in webhook_receiver if about == paid.id], timeout=15)
    assert delivered == ["payment_intent.succeeded"]
    assert Receiver.refuse_next == 0


def test_one_payment_intent_per_hold_confirmed_again_with_another_card_after_a_decline(stripe_client, customer):
    intent = stripe_client.v1.payment_intents.create(params={
        "amount": 15000, "currency": "usd", "customer": customer.id, "setup_future_usage": "off_session",
        "payment_method_types": ["card"]}, options={"idempotency_key": "deposit:hld_two_cards"})
    with pytest.raises(stripe.CardError):
        stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_chargeDeclined"})

    paid = stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})

    assert (paid.id, paid.status) == (intent.id, "succeeded")
    with pytest.raises(stripe.InvalidRequestError):  # a PaymentIntent succeeds once
        stripe_client.v1.payment_intents.confirm(intent.id, params={"payment_method": "pm_card_visa"})
