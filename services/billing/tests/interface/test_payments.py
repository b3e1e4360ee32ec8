"""Money through the real broker and store and the Stripe stand-in: a hold's deposit charged once whatever
happens (a repeat, a lost answer, three webhooks out of order), 3-D Secure and declines answered properly, the
balance charged off-session after the visit, fees and refunds by the policy, and a ledger that sums to zero
after every test (fixtures in ``conftest``, helpers in ``support``)."""

import base64
from datetime import timedelta

import pytest
import requests

from chassis.errors import DomainError, InvalidInput
from chassis.testing import wait_for
from services.billing import ledger
from services.billing.tests.interface.support import START, booked_from_hold, call, charges, held, publish

pytestmark = pytest.mark.usefixtures("ledger_sums_to_zero")


def test_a_deposit_is_the_kept_quotes_charged_once_and_announced_once(billing, db, emitted, stripe_client,
                                                                       patient):
    quote = held(billing, "hld_1", patient)

    paid = call(billing, "pay_deposit", "hld_1", "pm_card_visa")
    again = call(billing, "pay_deposit", "hld_1", "pm_card_visa")

    assert (paid["status"], paid["amount_cents"], paid["currency"]) == ("succeeded", quote["deposit_cents"], "usd")
    assert again == paid
    assert [c.amount for c in charges(stripe_client, db, patient)] == [15000]
    wait_for(lambda: emitted("deposit.paid"))
    assert emitted("deposit.paid") == [{"hold_id": "hld_1", "patient_id": patient, "amount_cents": 15000,
                                        "currency": "usd", "payment_intent_id": paid["payment_intent_id"]}]
    assert [p["kind"] for p in wait_for(lambda: emitted("payment.succeeded"))] == ["deposit"]
    assert call(billing, "patient_balance", patient)["deposits_held_cents"] == 15000


def test_an_answer_lost_after_the_charge_then_a_retry_charges_once(billing, db, stripe_client, stripe_control,
                                                                   patient):
    held(billing, f"hld_lost_{patient}", patient)
    stripe_control("double/faults", {"path": "/v1/payment_intents/", "kind": "lose_answer"})

    paid = call(billing, "pay_deposit", f"hld_lost_{patient}", "pm_card_visa")

    assert paid["status"] == "succeeded"
    assert len(charges(stripe_client, db, patient)) == 1
    assert db.journal.count_documents({"kind": "deposit"}) == 1


def test_3d_secure_then_the_same_webhook_three_times_out_of_order_records_one_payment(billing, db, stripe_double,
                                                                                       emitted, patient):
    hold = f"hld_3ds_{patient}"
    held(billing, hold, patient)
    challenged = call(billing, "pay_deposit", hold, "pm_card_threeDSecure2Required")
    assert challenged["status"] == "requires_action" and challenged["client_secret"]
    assert db.journal.count_documents({}) == 0

    intent = challenged["payment_intent_id"]
    failed_first = {"id": f"evt_failed_{patient}", "type": "payment_intent.payment_failed",
                    "data": {"object": {"id": intent, "status": "requires_payment_method"}}}
    succeeded = {"id": f"evt_succeeded_{patient}", "type": "payment_intent.succeeded",
                 "data": {"object": {"id": intent}}}
    requests.post(f"{stripe_double}/v1/payment_intents/{intent}/_authenticate",
                  data={"client_secret": challenged["client_secret"], "success": "true", "key": "pk_test_x"},
                  timeout=5).raise_for_status()
    answers = [call(billing, "handle_stripe_event", event) for event in (succeeded, failed_first, succeeded,
                                                                         succeeded)]

    assert [a["duplicate"] for a in answers] == [False, False, True, True]
    assert db.journal.count_documents({"kind": "deposit"}) == 1
    assert db.deposits.find_one({"_id": hold})["status"] == "succeeded"
    wait_for(lambda: emitted("deposit.paid"))
    assert len(emitted("deposit.paid")) == 1


@pytest.mark.parametrize(("hold", "payment_method", "other_patient", "code", "status"), [
    ("hld_declined", "pm_card_chargeDeclined", False, "card_declined", 402),
    ("hld_unknown", "pm_card_visa", False, "hold_not_found", 404),
    ("hld_other", "pm_card_visa", True, "not_your_hold", 403),
    ("hld_lapsed", "pm_card_visa", False, "hold_lapsed", 409),
    ("hld_consult", "pm_card_visa", False, "nothing_to_pay", 422),
])
def test_a_deposit_that_cannot_be_taken_is_a_clear_error_and_moves_no_money(billing, db, patient, hold,
                                                                           payment_method, other_patient, code,
                                                                           status):
    hold = f"{hold}_{patient}"
    if not hold.startswith("hld_unknown"):
        held(billing, hold, patient, visit_type="consult" if hold.startswith("hld_consult") else "iv-mood",
             expires_in=timedelta(minutes=-1) if hold.startswith("hld_lapsed") else timedelta(minutes=10))

    with pytest.raises(DomainError) as refused:
        call(billing, "pay_deposit", hold, payment_method, "pat_mallory" if other_patient else patient)

    assert (refused.value.code, refused.value.status) == (code, status)
    assert db.journal.count_documents({}) == 0


def test_a_payment_method_that_is_not_one_is_refused(billing):
    with pytest.raises(InvalidInput) as refused:
        call(billing, "pay_deposit", "hld_1", "4242424242424242")
    assert "payment_method_id" in refused.value.details["errors"]


def test_hold_deposit_booked_completed_balance_charged_and_settled(billing, config, db, emitted, stripe_client,
                                                                  patient):
    quote, invoice = booked_from_hold(billing, config, db, patient, f"hld_flow_{patient}", f"apt_flow_{patient}")
    assert call(billing, "get_invoice", invoice["_id"])["amount_due_cents"] == quote["total_cents"] - 15000

    publish(config, "scheduling", "visit.completed", {
        "appointment_id": invoice["appointment_id"], "patient_id": patient, "visit_type": "iv-mood",
        "infusion_minutes": 45, "completed_at": START + timedelta(hours=1)})
    wait_for(lambda: emitted("invoice.settled"))

    settled = call(billing, "get_invoice", invoice["_id"])
    assert (settled["status"], settled["amount_due_cents"]) == ("settled", 0)
    assert sorted(p["amount_cents"] for p in settled["payments"]) == [15000, 45000]
    assert sorted(c.amount for c in charges(stripe_client, db, patient)) == [15000, 45000]
    assert [p["kind"] for p in wait_for(lambda: len(emitted("payment.succeeded")) == 2 and
                                        emitted("payment.succeeded"))] == ["deposit", "balance"]
    assert ledger.total(list(db.journal.find()), "revenue:iv-mood") == -60000
    receipt = call(billing, "receipt_pdf", invoice["_id"])
    assert receipt["content_type"] == "application/pdf"
    assert base64.b64decode(receipt["content_base64"]).startswith(b"%PDF-")


def test_a_lapsed_hold_paid_late_is_refunded_in_full(billing, config, db, emitted, patient):
    hold = f"hld_late_{patient}"
    held(billing, hold, patient)
    paid = call(billing, "pay_deposit", hold, "pm_card_visa")

    publish(config, "scheduling", "booking.failed", {"hold_id": hold, "patient_id": patient,
                                                     "reason": "slot_taken"})

    refund = wait_for(lambda: emitted("refund.issued"))[0]
    assert (refund["hold_id"], refund["amount_cents"], refund["reason"]) == (hold, paid["amount_cents"],
                                                                             "booking_failed")
    assert call(billing, "patient_balance", patient)["deposits_held_cents"] == 0


@pytest.mark.parametrize(("cause", "payload", "fee", "refund"), [
    ("appointment.cancelled", {"by": "patient", "notice_hours": 72, "reason": "x"}, 0, 15000),
    ("appointment.cancelled", {"by": "patient", "notice_hours": 30, "reason": "x"}, 5000, 10000),
    ("appointment.cancelled", {"by": "clinic", "notice_hours": 2, "reason": "nurse ill"}, 0, 15000),
    ("appointment.no_show", {}, 10000, 5000),
    ("visit.aborted", {"reason": "not_fasted", "chargeable": True}, 10000, 5000),
    ("visit.aborted", {"reason": "blood_pressure", "chargeable": False}, 7500, 7500),
])
def test_a_visit_called_off_keeps_the_policys_fee_and_refunds_the_rest(billing, config, db, emitted, patient,
                                                                       cause, payload, fee, refund):
    _, invoice = booked_from_hold(billing, config, db, patient, f"hld_{patient}", f"apt_{patient}")

    publish(config, "scheduling", cause, {"appointment_id": invoice["appointment_id"], "patient_id": patient,
                                          "visit_type": "iv-mood", "start_at": START, **payload})

    if refund:
        wait_for(lambda: emitted("refund.issued"))
        assert [r["amount_cents"] for r in emitted("refund.issued")] == [refund]
    if fee:
        assert [f["amount_cents"] for f in wait_for(lambda: emitted("fee.charged"))] == [fee]
    called_off = call(billing, "get_invoice", invoice["_id"])
    assert (called_off["status"], called_off["amount_due_cents"], called_off["fee_cents"]) == ("called_off", 0, fee)


def test_a_manual_refund_never_exceeds_what_was_paid(billing, config, db, patient):
    _, invoice = booked_from_hold(billing, config, db, patient, f"hld_{patient}", f"apt_{patient}")
    request = {"amount_cents": 15001, "currency": "usd", "reason": "goodwill", "requested_by": "fin_1"}

    with pytest.raises(DomainError) as refused:
        call(billing, "refund_invoice", invoice["_id"], request)
    assert refused.value.code == "refund_exceeds_payment"
    for bad in ({**request, "amount_cents": -5}, {**request, "amount_cents": 10.5}, {**request, "currency": "usdx"}):
        with pytest.raises(InvalidInput):
            call(billing, "refund_invoice", invoice["_id"], bad)

    refunded = call(billing, "refund_invoice", invoice["_id"], {**request, "amount_cents": 4000})

    assert [r["amount_cents"] for r in refunded["refunds"]] == [4000]
    assert call(billing, "get_invoice", invoice["_id"])["amount_due_cents"] == 45000 + 4000


def test_one_fee_waiver_per_patient_per_year(billing, config, db, patient):
    _, first = booked_from_hold(billing, config, db, patient, f"hld_a_{patient}", f"apt_a_{patient}")
    _, second = booked_from_hold(billing, config, db, patient, f"hld_b_{patient}", f"apt_b_{patient}")

    assert call(billing, "waive_fee", first["_id"], "adm_1") == {"invoice_id": first["_id"], "waived": True}
    with pytest.raises(DomainError) as refused:
        call(billing, "waive_fee", second["_id"], "adm_1")
    assert refused.value.code == "waiver_not_available"


def test_a_package_is_paid_in_full_once_and_recorded_as_credits(billing, db, emitted, stripe_client, patient):
    request = {"patient_id": patient, "package": "induction-6", "payment_method_id": "pm_card_visa"}

    bought = call(billing, "buy_package", request)
    again = call(billing, "handle_stripe_event", {"id": f"evt_pkg_{patient}", "type": "payment_intent.succeeded",
                                                  "data": {"object": {"id": bought["payment_intent_id"]}}})

    assert (bought["status"], bought["amount_cents"]) == ("succeeded", 302500)
    assert again["duplicate"] is False
    assert db.journal.count_documents({"kind": "package"}) == 1
    package = db.packages.find_one({"patient_id": patient})
    assert (package["visits"], package["visits_used"], package["visit_type"]) == (6, 0, "iv-mood")
    assert ledger.total(list(db.journal.find()), "package_credits") == -302500
    assert [p["kind"] for p in wait_for(lambda: emitted("payment.succeeded"))] == ["package"]
    with pytest.raises(DomainError) as refused:
        call(billing, "buy_package", {**request, "package": "induction-99"})
    assert refused.value.status == 422
