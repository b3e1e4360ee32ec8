"""A package bought is used up visit by visit, through the real broker and store and the Stripe stand-in: a
visit of the package's type booked draws one credit (once, whatever the redeliveries), is priced at the package's
price per visit and owes nothing; a visit given with a credit charges no balance; a visit called off gives the
credit back; and a package sale is a payment in the export."""

from datetime import UTC, datetime, timedelta

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from chassis.ids import derived_id
from chassis.testing import wait_for
from services.billing import ledger
from services.billing.tests.interface.support import START, call, charges, envelope, publish

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
