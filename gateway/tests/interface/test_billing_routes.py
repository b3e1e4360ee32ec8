"""Billing's routes refuse bad input with a clear problem and move no money: a refund above what was paid, a
negative or fractional amount, an unknown currency, a quote for an unknown visit type, a deposit for an unknown
hold, a waiver asked by a patient, a forged webhook; a finance export streams as CSV; a patient's packages show
their visits left to that patient and finance, and to no other patient."""

from __future__ import annotations

import json
import uuid

import pytest
import stripe

from gateway.tests.interface.support import Platform, assert_problem, bearer

WEBHOOK_SECRET = "whsec_billing_routes"


@pytest.fixture(scope="module")
def gateway_settings():
    return {"WEBHOOK_SECRETS": {"stripeWebhook": WEBHOOK_SECRET}}


@pytest.fixture(scope="module")
def invoice(platform: Platform) -> dict:
    platform.add_nurse()
    patient = platform.register()
    return platform.invoice_of(platform.book(patient)["id"])


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"amount_cents": 1, "currency": "usd", "reason": "goodwill"}, 422, None),       # nothing was paid
    ({"amount_cents": -5, "currency": "usd", "reason": "goodwill"}, 422, "amount_cents"),
    ({"amount_cents": 10.5, "currency": "usd", "reason": "goodwill"}, 422, "amount_cents"),
    ({"amount_cents": 100, "currency": "eur", "reason": "goodwill"}, 422, "currency"),
    ({"amount_cents": 100, "currency": "usd"}, 422, "reason"),
])
def test_a_refund_that_cannot_be_is_a_clear_problem(platform, invoice, body, status, field):
    answer = platform.post(f"/v1/invoices/{invoice['id']}/refunds", json=body, headers=bearer("finance", "fin-1"))

    problem = assert_problem(answer, status)
    if field:
        assert field in {error["field"] for error in problem["errors"]}
    else:
        assert problem["code"] == "refund_exceeds_payment"
    assert platform.db("billing").journal.count_documents({"kind": "refund"}) == 0


def test_a_patient_cannot_waive_a_fee(platform, invoice):
    answer = platform.post(f"/v1/invoices/{invoice['id']}/fee-waiver", headers=bearer("patient", invoice["patient_id"]))
    assert_problem(answer, 403, "forbidden")


def test_a_quote_for_an_unknown_visit_type_names_the_field(platform):
    answer = platform.post("/v1/quotes", json={"visit_type": "iv-party"})
    problem = assert_problem(answer, 422)
    assert [error["field"] for error in problem["errors"]] == ["visit_type"]


def test_a_deposit_for_an_unknown_hold_is_not_found(platform, invoice):
    answer = platform.post("/v1/holds/hld_nobody/deposit", json={"payment_method_id": "pm_card_visa"},
                           headers=bearer("patient", invoice["patient_id"]))
    assert_problem(answer, 404, "hold_not_found")


def test_a_forged_webhook_is_refused_and_a_signed_one_replayed_is_a_duplicate(platform):
    payload = json.dumps({"id": "evt_routes_1", "type": "customer.created", "data": {"object": {"id": "cus_x"}}})
    forged = stripe.WebhookSignature.generate_signature_header(payload, "whsec_someone_else")
    signed = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)
    headers = {"Content-Type": "application/json"}

    assert_problem(platform.post("/v1/webhooks/stripe", data=payload, headers={**headers, "Stripe-Signature": forged}),
                   401)
    first = platform.post("/v1/webhooks/stripe", data=payload, headers={**headers, "Stripe-Signature": signed})
    again = platform.post("/v1/webhooks/stripe", data=payload, headers={**headers, "Stripe-Signature": signed})

    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)


def test_a_finance_export_streams_as_csv(platform, invoice):
    answer = platform.get("/v1/exports/ledger", params={"format": "csv"}, headers=bearer("finance", "fin-1"))

    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    lines = answer.text.splitlines()
    assert lines[0].startswith("posted_at,entry_id,cause") and len(lines) >= 3  # the invoice's entry
    assert_problem(platform.get("/v1/exports/everything", headers=bearer("finance", "fin-1")), 404)


def test_a_package_shows_its_visits_left_to_its_patient_and_finance_and_to_no_other_patient(platform):
    platform.add_nurse()
    patient = platform.register(cleared=True)
    bought = platform.post(f"/v1/patients/{patient}/packages", json={
        "package": "induction-6", "payment_method_id": "pm_card_visa"},
        headers={**bearer("patient", patient), "Idempotency-Key": uuid.uuid4().hex})
    assert bought.status_code == 201 and bought.json()["status"] == "succeeded", bought.text

    assert platform.invoice_of(platform.book(patient)["id"])["amount_due_cents"] == 0

    for reader in (bearer("patient", patient), bearer("finance", "fin-1")):
        listed = platform.get(f"/v1/patients/{patient}/packages", headers=reader)
        assert listed.status_code == 200, listed.text
        assert [(p["purchase_id"], p["visits_used"], p["visits_left"], p["status"]) for p in listed.json()["items"]] \
            == [(bought.json()["purchase_id"], 1, 5, "active")]
    assert_problem(platform.get(f"/v1/patients/{patient}/packages", headers=bearer("patient", "pat_someone_else")),
                   403)
