"""What billing does with what Stripe tells it, through the real broker and store and a Stripe stand-in of this
module's own whose webhooks are captured as sent (signed payloads, as Stripe shapes them) and handed to billing:
a saved card that fails off-session leaves the invoice open and says so once; a ``charge.refunded`` records a
refund billing made once, and leaves one it did not make to reconciliation; a ``charge.dispute.created`` moves the
disputed money aside once; a patient registered becomes one Stripe customer."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
import stripe
from nameko.standalone.events import event_dispatcher

from chassis.testing import wait_for
from services.billing import ledger
from services.billing.stripe_double import running
from services.billing.tests.interface.support import START, call, envelope, held, publish

pytestmark = pytest.mark.usefixtures("ledger_sums_to_zero")


@pytest.fixture(scope="module")
def own_stripe():
    with running() as base:
        yield base


@pytest.fixture(scope="module")
def webhooks(own_stripe):
    """Every event the stand-in sends, as sent; ``webhooks(kind, test)`` waits for the first one matching."""
    received: list[dict] = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    requests.post(f"{own_stripe}/_config/webhooks/capture", timeout=5, data={
        "url": f"http://127.0.0.1:{server.server_port}/", "secret": "whsec_capture"}).raise_for_status()

    def of_kind(kind: str, test=lambda about: True) -> list[dict]:
        try:
            return wait_for(lambda: [e for e in received if e["type"] == kind and test(e["data"]["object"])],
                            timeout=15)
        except AssertionError:
            sent = [(event["type"], event["data"]["object"].get("id")) for event in received]
            raise AssertionError(f"no {kind} among the webhooks sent: {sent}") from None

    yield of_kind
    server.shutdown()


@pytest.fixture
def config(service_config, own_stripe):
    return {**service_config, "STRIPE_API_KEY": "sk_test_events", "STRIPE_API_BASE": own_stripe,
            "STRIPE_TIMEOUT_SECONDS": 2}


@pytest.fixture
def stripe_client(own_stripe):
    return stripe.StripeClient("sk_test_events", base_addresses={"api": own_stripe}, max_network_retries=2,
                               http_client=stripe.RequestsClient(timeout=2))


def deposit_paid(billing, patient_id: str, hold: str) -> dict:
    held(billing, hold, patient_id)
    return call(billing, "pay_deposit", hold, "pm_card_visa")


def intent_of(stripe_client, payment_intent_id: str):
    return stripe_client.v1.payment_intents.retrieve(payment_intent_id)


def charge_of(db, paid: dict) -> str:
    """The charge of a deposit, as billing recorded it from Stripe's answer."""
    return db.journal.find_one({"payment_intent_id": paid["payment_intent_id"], "kind": "deposit"})["charge_id"]


def test_a_balance_the_saved_card_cannot_pay_off_session_leaves_the_invoice_open_and_says_so_once(
        billing, config, db, emitted, own_stripe, patient):
    hold = f"hld_auth_{patient}"
    held(billing, hold, patient)
    challenged = call(billing, "pay_deposit", hold, "pm_card_authenticationRequired")
    assert challenged["status"] == "requires_action"
    requests.post(f"{own_stripe}/v1/payment_intents/{challenged['payment_intent_id']}/_authenticate", timeout=5,
                  data={"client_secret": challenged["client_secret"], "success": "true", "key": "pk_test_x"},
                  ).raise_for_status()
    call(billing, "handle_stripe_event", {"id": f"evt_auth_{patient}", "type": "payment_intent.succeeded",
                                          "data": {"object": {"id": challenged["payment_intent_id"]}}})
    quote = held(billing, hold, patient)
    publish(config, "scheduling", "appointment.booked", {
        "appointment_id": f"apt_auth_{patient}", "patient_id": patient, "nurse_id": "nur_kim",
        "visit_type": "iv-mood", "start_at": START, "end_at": START + timedelta(hours=2),
        "time_zone": "America/Denver", "hold_id": hold, "quote_id": quote["quote_id"]})
    invoice = wait_for(lambda: db.invoices.find_one({"appointment_id": f"apt_auth_{patient}"}))

    completed = envelope("scheduling", "visit.completed", {
        "appointment_id": invoice["appointment_id"], "patient_id": patient, "visit_type": "iv-mood",
        "infusion_minutes": 45, "completed_at": START + timedelta(hours=1)})
    dispatch = event_dispatcher(config)
    dispatch("scheduling", "visit.completed", completed)
    dispatch("scheduling", "visit.completed", completed)  # redelivered

    failed = wait_for(lambda: emitted("payment.failed"))
    wait_for(lambda: db.journal.find_one({"kind": "visit"}))
    time.sleep(1)  # room for a second announcement, were there one
    assert emitted("payment.failed") == failed and len(failed) == 1
    assert (failed[0]["invoice_id"], failed[0]["amount_cents"], failed[0]["reason_code"]) == (
        invoice["_id"], 45000, "authentication_required")
    still_open = call(billing, "get_invoice", invoice["_id"])
    assert (still_open["status"], still_open["amount_due_cents"]) == ("open", 45000)
    assert [p["kind"] for p in still_open["payments"]] == ["deposit"]
    assert emitted("invoice.settled") == []


def test_a_refund_billing_made_is_recorded_once_whatever_charge_refunded_says(billing, config, db, emitted,
                                                                              webhooks, stripe_client, patient):
    hold = f"hld_refunded_{patient}"
    paid = deposit_paid(billing, patient, hold)
    publish(config, "scheduling", "booking.failed", {"hold_id": hold, "patient_id": patient, "reason": "slot_taken"})
    wait_for(lambda: emitted("refund.issued"))
    charge_id = charge_of(db, paid)

    refunded = webhooks("charge.refunded", lambda charge: charge["id"] == charge_id)[0]
    answers = [call(billing, "handle_stripe_event", refunded) for _ in range(2)]
    call(billing, "handle_stripe_event", {**refunded, "id": refunded["id"] + "_again"})  # the same news, new id

    assert [a["duplicate"] for a in answers] == [False, True]
    assert db.journal.count_documents({"kind": "refund"}) == 1
    time.sleep(0.5)
    assert len(emitted("refund.issued")) == 1
    assert call(billing, "patient_balance", patient)["deposits_held_cents"] == 0


def test_a_refund_made_at_stripe_by_someone_else_is_left_to_reconciliation(billing, db, webhooks, stripe_client,
                                                                          patient):
    paid = deposit_paid(billing, patient, f"hld_dash_{patient}")
    refund = stripe_client.v1.refunds.create(params={"payment_intent": paid["payment_intent_id"], "amount": 1000})
    charge_id = charge_of(db, paid)

    call(billing, "handle_stripe_event", webhooks("charge.refunded", lambda charge: charge["id"] == charge_id)[0])

    assert db.journal.count_documents({"kind": "refund"}) == 0
    today = datetime.now(UTC).date().isoformat()
    found = call(billing, "reconcile", today, today)["differences"]
    assert {"problem": "missing_in_ledger", "source": refund.id, "stripe_amount_cents": -1000,
            "ledger_amount_cents": None} in found


def test_a_dispute_opened_moves_the_disputed_money_aside_once(billing, db, webhooks, stripe_client, own_stripe,
                                                              patient):
    paid = deposit_paid(billing, patient, f"hld_dispute_{patient}")
    charge_id = charge_of(db, paid)

    requests.post(f"{own_stripe}/_config/double/disputes", json={"charge": charge_id}, timeout=5).raise_for_status()
    opened = webhooks("charge.dispute.created", lambda dispute: dispute["charge"] == charge_id)[0]
    answers = [call(billing, "handle_stripe_event", opened) for _ in range(2)]
    call(billing, "handle_stripe_event", {**opened, "id": opened["id"] + "_again"})

    assert [a["duplicate"] for a in answers] == [False, True]
    disputes = list(db.journal.find({"kind": "dispute"}))
    assert [(d["dispute_id"], d["patient_id"]) for d in disputes] == [(opened["data"]["object"]["id"], patient)]
    journal = list(db.journal.find())
    assert ledger.total(journal, "disputed_funds") == paid["amount_cents"]


def test_a_patient_registered_becomes_one_stripe_customer(billing, config, db, stripe_client, patient):
    registered = envelope("intake", "patient.registered", {
        "patient_id": patient, "first_name": "Ana", "last_name": "Lima", "email": f"{patient}@example.com",
        "phone": "+13035550100"})
    dispatch = event_dispatcher(config)
    dispatch("intake", "patient.registered", registered)
    dispatch("intake", "patient.registered", {**registered, "event_id": registered["event_id"] + "x"})

    customer = wait_for(lambda: db.customers.find_one({"_id": patient, "name": "Ana Lima"}))
    time.sleep(1)  # both deliveries handled

    assert db.customers.count_documents({}) == 1
    at_stripe = stripe_client.v1.customers.retrieve(customer["stripe_customer_id"])
    assert (at_stripe.email, at_stripe.name, at_stripe.metadata["patient_id"]) == (
        f"{patient}@example.com", "Ana Lima", patient)
    paid = deposit_paid(billing, patient, f"hld_cust_{patient}")  # the deposit is charged to that customer
    assert intent_of(stripe_client, paid["payment_intent_id"]).customer == customer["stripe_customer_id"]
