"""Holding a visit while the deposit is paid, on the real broker and store, with intake and billing running.

A hold claims the nurse's and the patient's time exactly as an appointment does (the same unique index), with
billing's quote; it lapses by itself after ``HOLD_MINUTES``, releasing its slots; ``deposit.paid`` turns it
into an appointment in one update, or, when it lapsed and its time was taken meanwhile, into
``booking.failed`` (billing refunds).
"""

from datetime import datetime

import pytest
from nameko.testing.services import entrypoint_hook

from chassis.ids import derived_id
from services.scheduling.exceptions import HoldNotFound, NoNurseAvailable, PatientAlreadyBooked, VisitNotPriced
from services.scheduling.tests.interface.support import a_bookable_start, book, call, deposit_paid, place_hold


def expire_lapsed_holds(scheduling) -> None:
    with entrypoint_hook(scheduling, "expire_lapsed_holds") as sweep:
        sweep()


def test_a_hold_claims_the_time_and_carries_billings_quote(scheduling, register, add_nurse, scheduling_events):
    add_nurse("nur_kim", "CO")
    patient, start_at = register(), a_bookable_start()

    hold = place_hold(scheduling, patient, start_at)

    assert (hold["status"], hold["nurse_id"], hold["appointment_id"]) == ("held", "nur_kim", None)
    assert hold["quote"]["quote_id"] == derived_id("quo", hold["id"])  # billing keeps it as the hold's quote
    assert hold["quote"]["deposit_cents"] > 0 and hold["quote"]["currency"] == "usd"
    assert call(scheduling, "get_hold", hold["id"]) == hold
    with pytest.raises(NoNurseAvailable):  # the same unique index as an appointment's
        book(scheduling, register(), start_at, nurse_id="nur_kim")
    with pytest.raises(PatientAlreadyBooked):
        book(scheduling, patient, start_at)
    with pytest.raises(HoldNotFound):  # and the hold is not an appointment yet
        call(scheduling, "get_hold", "hld_nobody")
    (placed,) = scheduling_events.of_type("hold.placed", 1)
    assert placed["payload"] == {
        "hold_id": hold["id"], "patient_id": patient, "nurse_id": "nur_kim", "visit_type": "iv-mood",
        "start_at": placed["payload"]["start_at"], "end_at": placed["payload"]["end_at"], "time_zone": "America/Denver",
        "expires_at": placed["payload"]["expires_at"], "quote_id": hold["quote"]["quote_id"],
        "deposit_cents": hold["quote"]["deposit_cents"], "currency": "usd"}
    assert datetime.fromisoformat(placed["payload"]["start_at"]) == datetime.fromisoformat(start_at)


def test_a_paid_hold_becomes_the_appointment_once_however_often_the_deposit_event_arrives(
        scheduling, register, add_nurse, appointments, scheduling_events):
    add_nurse("nur_kim", "CO")
    hold = place_hold(scheduling, register(), a_bookable_start())

    deposit_paid(scheduling, hold, event_id="evt_paid_1")
    deposit_paid(scheduling, hold, event_id="evt_paid_1")  # redelivered
    deposit_paid(scheduling, hold)                         # or sent twice

    booked = call(scheduling, "get_hold", hold["id"])
    assert (booked["status"], booked["appointment_id"]) == ("booked", derived_id("apt", hold["id"]))
    appointment = call(scheduling, "get_appointment", booked["appointment_id"])
    assert (appointment["status"], appointment["hold_id"], appointment["start_at"]) == (
        "booked", hold["id"], hold["start_at"])
    (event,) = scheduling_events.of_type("appointment.booked", 1)
    assert (event["payload"]["appointment_id"], event["payload"]["hold_id"], event["payload"]["quote_id"]) == (
        appointment["id"], hold["id"], hold["quote"]["quote_id"])
    assert appointments.count_documents({}) == 1
    scheduling_events.of_type("hold.placed", 1)
    assert [e["type"] for e in scheduling_events.events].count("appointment.booked") == 1


@pytest.mark.parametrize("hold_minutes", [0.0001])
def test_a_lapsed_hold_releases_its_time_and_a_late_deposit_books_it_while_still_free(
        scheduling, register, add_nurse, appointments, scheduling_events):
    add_nurse("nur_kim", "CO")
    hold = place_hold(scheduling, register(), a_bookable_start())

    expire_lapsed_holds(scheduling)
    expire_lapsed_holds(scheduling)  # another process sweeping too: released once

    assert call(scheduling, "get_hold", hold["id"])["status"] == "expired"
    assert appointments.find_one({"hold_id": hold["id"]})["slot_keys"] == []
    (expired,) = scheduling_events.of_type("hold.expired", 1)
    assert expired["payload"] == {"hold_id": hold["id"], "patient_id": hold["patient_id"]}
    deposit_paid(scheduling, hold)  # paid a little late: the time is still free, so it is booked
    assert call(scheduling, "get_hold", hold["id"])["status"] == "booked"
    assert len(appointments.find_one({"hold_id": hold["id"]})["slot_keys"]) == 48
    scheduling_events.of_type("appointment.booked", 1)
    assert [e["type"] for e in scheduling_events.events].count("hold.expired") == 1


@pytest.mark.parametrize("hold_minutes", [0.0001])
def test_a_deposit_for_a_lapsed_hold_whose_time_was_taken_fails_the_booking(
        scheduling, register, add_nurse, appointments, scheduling_events):
    add_nurse("nur_kim", "CO")
    start_at = a_bookable_start()
    hold = place_hold(scheduling, register(), start_at)
    expire_lapsed_holds(scheduling)
    taken = book(scheduling, register(), start_at, nurse_id="nur_kim")  # the released time is booked by another

    deposit_paid(scheduling, hold)

    failed = call(scheduling, "get_hold", hold["id"])
    assert (failed["status"], failed["failure_reason"], failed["appointment_id"]) == ("failed", "slot_taken", None)
    assert appointments.find_one({"hold_id": hold["id"]})["slot_keys"] == [] and taken["nurse_id"] == "nur_kim"
    (event,) = scheduling_events.of_type("booking.failed", 1)
    assert event["payload"] == {"hold_id": hold["id"], "patient_id": hold["patient_id"],
                                "reason": "hold_lapsed_and_slot_taken"}


def test_a_deposit_paid_after_the_patient_may_no_longer_book_fails_the_booking_and_frees_the_time(
        scheduling, intake, register, add_nurse, appointments, scheduling_events):
    """Intake is asked again when the deposit arrives: here a suicide-risk answer opened an urgent review after the
    hold was placed, so the paid hold is not booked (billing refunds on ``booking.failed``)."""
    add_nurse("nur_kim", "CO")
    patient_id = register()
    hold = place_hold(scheduling, patient_id, a_bookable_start())
    call(intake, "submit_screening", patient_id, {"instrument": "phq-9", "answers": {
        **{f"phq9_{n}": 1 for n in range(1, 9)}, "phq9_9": 1}})

    deposit_paid(scheduling, hold)
    deposit_paid(scheduling, hold)  # redelivered: settled already

    assert call(scheduling, "get_hold", hold["id"])["status"] == "failed"
    assert appointments.find_one({"hold_id": hold["id"]})["slot_keys"] == []
    (failed,) = scheduling_events.of_type("booking.failed", 1)
    assert failed["payload"]["reason"] == "patient_not_eligible_urgent_review_open"
    assert "appointment.booked" not in [e["type"] for e in scheduling_events.events]


def test_a_hold_carries_the_discount_the_patient_claims_and_an_unknown_one_holds_nothing(
        scheduling, register, add_nurse, appointments):
    add_nurse("nur_kim", "CO")
    full = place_hold(scheduling, register(), a_bookable_start(days_ahead=3))["quote"]
    veteran = place_hold(scheduling, register(), a_bookable_start(days_ahead=4), discount_codes=["veteran"])["quote"]

    assert veteran["discount_cents"] > 0 and veteran["total_cents"] == full["total_cents"] - veteran["discount_cents"]
    assert veteran["deposit_cents"] <= full["deposit_cents"]
    with pytest.raises(VisitNotPriced):
        place_hold(scheduling, register(), a_bookable_start(days_ahead=5), discount_codes=["friends-and-family"])
    assert appointments.count_documents({}) == 2
