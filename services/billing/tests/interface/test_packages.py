"""A package bought is used up visit by visit, through the real broker and store and the Stripe stand-in: a
visit of the package's type booked draws one credit (once, whatever the redeliveries), is priced at the package's
price per visit and owes nothing; a visit given with a credit charges no balance; a visit called off gives the
credit back; a deposit paid on a hold the package then covers is refunded after the visit; a declined patient gets
the unused visits back less the policy's retention; and the visits left when a package expires are earned."""

from datetime import UTC, datetime, timedelta

import pytest
import requests
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from chassis.ids import derived_id
from chassis.testing import wait_for
from services.billing import ledger
from services.billing.exceptions import PatientIneligible
from services.billing.tests.interface.support import START, booked_from_hold, call, charges, envelope, publish

pytestmark = pytest.mark.usefixtures("ledger_sums_to_zero")

PACKAGE_PRICE, FIRST_VISIT = 302500, 50417


def bought(billing, patient_id: str) -> dict:
    return call(billing, "buy_package", {"patient_id": patient_id, "package": "induction-6",
                                         "payment_method_id": "pm_card_visa"})


def booking(patient_id: str, appointment_id: str, visit_type: str = "iv-mood", start_at: datetime = START) -> dict:
    return envelope("scheduling", "appointment.booked", {
        "appointment_id": appointment_id, "patient_id": patient_id, "nurse_id": "nur_kim", "visit_type": visit_type,
        "start_at": start_at, "end_at": start_at + timedelta(hours=2), "time_zone": "America/Denver"})


def delivered(billing, config, *events: dict) -> None:
    """Publish each event (the same one twice is a redelivery) and wait until billing handled them all."""
    handled = []

    def all_handled(worker_ctx, result, exc_info):
        handled.append(exc_info)
        return len(handled) == len(events)

    dispatch = event_dispatcher(config)
    with entrypoint_waiter(billing, "invoice_booked_appointment", callback=all_handled, timeout=30):
        for event in events:
            dispatch("scheduling", event["type"], event)
    assert handled == [None] * len(events)


def test_a_booked_visit_draws_one_package_credit_once_and_owes_nothing(billing, config, db, patient):
    package = bought(billing, patient)
    first = booking(patient, f"apt_a_{patient}")

    delivered(billing, config, first, first)

    invoice = call(billing, "get_invoice", derived_id("inv", f"apt_a_{patient}"))
    assert (invoice["total_cents"], invoice["amount_due_cents"], invoice["discount_cents"]) == (
        FIRST_VISIT, 0, 60000 - FIRST_VISIT)
    assert invoice["package_credit"]["purchase_id"] == package["purchase_id"]
    kept = db.packages.find_one({"_id": package["purchase_id"]})
    assert kept["visits_used"] == 1 and kept["slots"].count(invoice["id"]) == 1
    assert db.journal.count_documents({"kind": "package_credit"}) == 1
    journal = list(db.journal.find())
    assert ledger.total(journal, "package_credits") == -(PACKAGE_PRICE - FIRST_VISIT)
    assert call(billing, "patient_balance", patient)["balance_cents"] == 0


def test_a_visit_of_another_type_or_after_the_package_expired_is_billed_in_full(billing, config, db, patient):
    bought(billing, patient)

    delivered(billing, config, booking(patient, f"apt_pain_{patient}", visit_type="iv-pain"),
              booking(patient, f"apt_late_{patient}", start_at=START + timedelta(days=120)))

    assert sorted(i["amount_due_cents"] for i in call(billing, "list_invoices", patient_id=patient)["items"]) == [
        60000, 100000]
    assert db.packages.find_one({"patient_id": patient})["visits_used"] == 0


def test_a_package_visit_given_is_settled_without_charging_the_card(billing, config, db, emitted, stripe_client,
                                                                   patient):
    bought(billing, patient)
    delivered(billing, config, booking(patient, f"apt_given_{patient}"))

    publish(config, "scheduling", "visit.completed", {
        "appointment_id": f"apt_given_{patient}", "patient_id": patient, "visit_type": "iv-mood",
        "infusion_minutes": 45, "completed_at": START + timedelta(hours=1)})

    settled = wait_for(lambda: [e for e in emitted("invoice.settled") if e["patient_id"] == patient])
    assert settled[0]["appointment_id"] == f"apt_given_{patient}"
    assert [c.amount for c in charges(stripe_client, db, patient)] == [PACKAGE_PRICE]  # the package, no balance
    journal = list(db.journal.find())
    assert ledger.total(journal, "revenue:iv-mood") + ledger.total(journal, "discounts") == -FIRST_VISIT


@pytest.mark.parametrize(("by", "notice_hours"), [("patient", 72), ("patient", 2), ("clinic", 2)])
def test_a_package_visit_called_off_gives_its_credit_back(billing, config, db, emitted, patient, by,
                                                          notice_hours):
    bought(billing, patient)
    appointment = f"apt_off_{patient}"
    delivered(billing, config, booking(patient, appointment))

    publish(config, "scheduling", "appointment.cancelled", {
        "appointment_id": appointment, "patient_id": patient, "by": by, "notice_hours": notice_hours,
        "reason": "x"})

    invoice_id = derived_id("inv", appointment)
    wait_for(lambda: db.invoices.find_one({"_id": invoice_id, "status": "called_off"}))
    wait_for(lambda: db.packages.find_one({"patient_id": patient})["visits_used"] == 0)
    called_off = call(billing, "get_invoice", invoice_id)
    # No money was paid on the invoice, so no fee is kept (fees come from money paid, never above it).
    assert (called_off["amount_due_cents"], called_off["fee_cents"]) == (0, 0)
    assert called_off["package_credit"]["status"] == "returned"
    assert ledger.total(list(db.journal.find()), "package_credits") == -PACKAGE_PRICE
    assert emitted("refund.issued") == [] and emitted("fee.charged") == []

    delivered(billing, config, booking(patient, f"apt_again_{patient}"))  # the credit is there to use again
    assert call(billing, "get_invoice", derived_id("inv", f"apt_again_{patient}"))["amount_due_cents"] == 0


def test_a_slot_taken_before_a_crash_is_the_one_the_redelivery_uses(billing, config, db, patient):
    package = bought(billing, patient)
    invoice_id = derived_id("inv", f"apt_crash_{patient}")
    db.packages.update_one({"_id": package["purchase_id"]}, {"$set": {"slots.3": invoice_id},
                                                             "$inc": {"visits_used": 1}})  # then the process died

    delivered(billing, config, booking(patient, f"apt_crash_{patient}"))

    kept = db.packages.find_one({"_id": package["purchase_id"]})
    assert kept["visits_used"] == 1 and kept["slots"][3] == invoice_id
    assert db.package_claims.find_one({"_id": invoice_id})["slot"] == 3


def test_six_visits_use_the_package_up_and_the_seventh_is_billed_in_full(billing, config, db, patient):
    bought(billing, patient)

    delivered(billing, config, *[booking(patient, f"apt_{n}_{patient}") for n in range(7)])

    due = sorted(i["amount_due_cents"] for i in call(billing, "list_invoices", patient_id=patient)["items"])
    assert due == [0] * 6 + [60000]
    assert ledger.total(list(db.journal.find()), "package_credits") == 0
    assert db.packages.find_one({"patient_id": patient})["visits_used"] == 6


def test_a_package_sale_is_in_the_payments_export(billing, patient):
    package = bought(billing, patient)
    today = datetime.now(UTC).date().isoformat()

    rows = call(billing, "export_page", "payments", today, today, limit=100)["rows"]

    assert [(r["kind"], r["amount_cents"], r["purchase_id"]) for r in rows if r["patient_id"] == patient] == [
        ("package", PACKAGE_PRICE, package["purchase_id"])]


def test_a_deposit_paid_for_a_visit_the_package_covers_is_refunded_when_the_visit_is_given(
        billing, config, db, emitted, stripe_client, patient):
    bought(billing, patient)
    quote, invoice = booked_from_hold(billing, config, db, patient, f"hld_pkg_{patient}", f"apt_pkg_{patient}")
    assert invoice["package_credit"]["value_cents"] == FIRST_VISIT

    publish(config, "scheduling", "visit.completed", {
        "appointment_id": f"apt_pkg_{patient}", "patient_id": patient, "visit_type": "iv-mood",
        "infusion_minutes": 45, "completed_at": START + timedelta(hours=1)})

    wait_for(lambda: [e for e in emitted("invoice.settled") if e["patient_id"] == patient])
    refunds = [e for e in emitted("refund.issued") if e["patient_id"] == patient]
    assert [(r["amount_cents"], r["reason"]) for r in refunds] == [(quote["deposit_cents"], "overpaid")]
    assert sorted(c.amount for c in charges(stripe_client, db, patient)) == sorted([PACKAGE_PRICE,
                                                                                    quote["deposit_cents"]])
    assert call(billing, "patient_balance", patient)["balance_cents"] == 0


def declined(config, patient_id: str) -> None:
    publish(config, "intake", "patient.declined", {"patient_id": patient_id, "review_id": f"rev_{patient_id}",
                                                  "reason_code": "clinician_declined"})


def test_a_declined_patient_gets_the_unused_visits_back_less_the_retention_once(billing, config, db, emitted,
                                                                               patient):
    package = bought(billing, patient)
    delivered(billing, config, booking(patient, f"apt_booked_{patient}"))  # its credit comes back first

    declined(config, patient)
    declined(config, patient)  # a second delivery refunds nothing more

    retained = PACKAGE_PRICE * 5 // 100
    refunds = wait_for(lambda: [e for e in emitted("refund.issued") if e["patient_id"] == patient])
    assert [(r["amount_cents"], r["purchase_id"], r["reason"]) for r in refunds] == [
        (PACKAGE_PRICE - retained, package["purchase_id"], "patient_declined")]
    kept = wait_for(lambda: db.packages.find_one({"_id": package["purchase_id"], "slots": {"$ne": None}}))
    assert kept["slots"] == ["declined"] * 6
    journal = list(db.journal.find())
    assert ledger.total(journal, "package_credits", purchase_id=package["purchase_id"]) == 0
    assert ledger.total(journal, "fee_revenue", purchase_id=package["purchase_id"]) == -retained
    delivered(billing, config, booking(patient, f"apt_after_{patient}"))
    assert call(billing, "get_invoice", derived_id("inv", f"apt_after_{patient}"))["amount_due_cents"] == 60000


def test_the_visits_left_when_a_package_expires_are_earned_once_and_a_credit_given_back_later_too(
        billing, config, db, patient):
    package = bought(billing, patient)
    appointment = f"apt_before_expiry_{patient}"
    delivered(billing, config, booking(patient, appointment))
    db.packages.update_one({"_id": package["purchase_id"]},
                           {"$set": {"expires_at": datetime.now(UTC) - timedelta(minutes=1)}})

    call(billing, "close_expired_packages")
    call(billing, "close_expired_packages")

    def expired() -> int:
        return -ledger.total(list(db.journal.find()), "revenue:package_expired", purchase_id=package["purchase_id"])

    kept = db.packages.find_one({"_id": package["purchase_id"]})
    assert kept["slots"] == [derived_id("inv", appointment)] + ["expired"] * 5
    assert expired() == PACKAGE_PRICE - FIRST_VISIT and db.journal.count_documents({"kind": "package_expired"}) == 5

    publish(config, "scheduling", "appointment.cancelled", {
        "appointment_id": appointment, "patient_id": patient, "by": "clinic", "notice_hours": 72, "reason": "x"})
    wait_for(lambda: db.packages.find_one({"_id": package["purchase_id"]})["visits_used"] == 0)
    call(billing, "close_expired_packages")

    assert expired() == PACKAGE_PRICE
    assert ledger.total(list(db.journal.find()), "package_credits", purchase_id=package["purchase_id"]) == 0


def test_no_package_is_sold_to_a_declined_patient_and_one_paid_while_the_decline_was_handled_is_refunded(
        billing, config, db, emitted, stripe_double, patient):
    challenged = call(billing, "buy_package", {"patient_id": patient, "package": "induction-6",
                                               "payment_method_id": "pm_card_threeDSecure2Required"})
    assert challenged["status"] == "requires_action"
    declined(config, patient)
    wait_for(lambda: db.declined_patients.find_one({"_id": patient}))

    with pytest.raises(PatientIneligible):
        bought(billing, patient)

    requests.post(f"{stripe_double}/v1/payment_intents/{challenged['payment_intent_id']}/_authenticate", timeout=5,
                  data={"client_secret": challenged["client_secret"], "success": "true", "key": "pk_test_x"},
                  ).raise_for_status()
    call(billing, "handle_stripe_event", {"id": f"evt_pkg_{patient}", "type": "payment_intent.succeeded",
                                          "data": {"object": {"id": challenged["payment_intent_id"]}}})

    refunds = wait_for(lambda: [e for e in emitted("refund.issued") if e["patient_id"] == patient])
    assert [(r["amount_cents"], r["purchase_id"]) for r in refunds] == [
        (PACKAGE_PRICE - PACKAGE_PRICE * 5 // 100, challenged["purchase_id"])]
