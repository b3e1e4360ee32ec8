"""Changes before the visit, on the real broker and store: a reschedule claims the new time and gives up the
old one in one write (the patient is never left without a slot), a cancellation by the patient or the clinic
releases the time and says how much notice was given, and a revoked consent cancels future infusions."""

from datetime import UTC, datetime, time

import pytest
from nameko.testing.services import entrypoint_hook

from chassis.events import Event
from services.scheduling.exceptions import AppointmentNotChangeable, NoNurseAvailable
from services.scheduling.tests.interface.support import a_bookable_start, book, call


def reschedule(scheduling, appointment: dict, start_at: str, **extra) -> dict:
    return call(scheduling, "reschedule_appointment", appointment["id"], {"start_at": start_at, **extra})


def cancel(scheduling, appointment: dict, by: str = "patient", reason: str = "changed plans") -> dict:
    return call(scheduling, "cancel_appointment", appointment["id"], {"by": by, "reason": reason})


def consent_revoked(scheduling, patient_id: str, event_id: str = "evt_revoked_1") -> None:
    event = Event(event_id, "consent.revoked", 1, datetime.now(UTC), "c-test", "intake",
                  {"patient_id": patient_id, "consent_id": "con_1"})
    with entrypoint_hook(scheduling, "cancel_after_consent_revoked") as handle:
        handle(event)


@pytest.mark.parametrize("new_time", [time(14, 0), time(10, 30)])  # elsewhere in the day, or overlapping itself
def test_a_reschedule_moves_the_visit_keeping_its_nurse_and_id(scheduling, register, add_nurse, appointments,
                                                               scheduling_events, new_time):
    add_nurse("nur_kim", "CO")
    add_nurse("nur_zoe", "CO")
    appointment = book(scheduling, register(), a_bookable_start(time(10, 0)), nurse_id="nur_zoe")

    moved = reschedule(scheduling, appointment, a_bookable_start(new_time))

    assert (moved["id"], moved["nurse_id"], moved["status"]) == (appointment["id"], "nur_zoe", "booked")
    assert datetime.fromisoformat(moved["start_at"]) == datetime.fromisoformat(a_bookable_start(new_time))
    assert datetime.fromisoformat(moved["previous_start_at"]) == datetime.fromisoformat(appointment["start_at"])
    (event,) = scheduling_events.of_type("appointment.rescheduled", 1)
    assert event["payload"]["appointment_id"] == appointment["id"] and event["payload"]["nurse_id"] == "nur_zoe"
    if new_time == time(14, 0):  # the old time is Zoe's to give again
        assert book(scheduling, register(), a_bookable_start(time(10, 0)), nurse_id="nur_zoe")["nurse_id"] == "nur_zoe"
    assert appointments.count_documents({"status": "booked"}) == (2 if new_time == time(14, 0) else 1)


def test_a_reschedule_to_a_taken_time_changes_nothing(scheduling, register, add_nurse, appointments):
    add_nurse("nur_kim", "CO")
    appointment = book(scheduling, register(), a_bookable_start(time(10, 0)))
    book(scheduling, register(), a_bookable_start(time(14, 0)))
    before = appointments.find_one({"_id": appointment["id"]})

    with pytest.raises(NoNurseAvailable):
        reschedule(scheduling, appointment, a_bookable_start(time(14, 30)))

    after = appointments.find_one({"_id": appointment["id"]})
    assert (after["start_at"], after["slot_keys"]) == (before["start_at"], before["slot_keys"])  # still held


def test_a_cancellation_releases_the_time_and_says_who_cancelled_with_how_much_notice(
        scheduling, register, add_nurse, scheduling_events):
    add_nurse("nur_kim", "CO")
    start_at = a_bookable_start(time(10, 0), days_ahead=3)
    appointment = book(scheduling, register(), start_at)

    cancelled = cancel(scheduling, appointment)
    again = cancel(scheduling, appointment, by="clinic", reason="another")  # the first cancellation stands

    assert (cancelled["status"], cancelled["cancelled_by"], cancelled["cancellation_reason"]) == (
        "cancelled", "patient", "changed plans")
    assert again == cancelled
    assert 24 * 2 < cancelled["notice_hours"] < 24 * 4
    (event,) = scheduling_events.of_type("appointment.cancelled", 1)
    assert {key: event["payload"][key] for key in ("appointment_id", "by", "reason", "notice_hours")} == {
        "appointment_id": appointment["id"], "by": "patient", "reason": "changed plans",
        "notice_hours": cancelled["notice_hours"]}
    assert book(scheduling, register(), start_at)["nurse_id"] == "nur_kim"  # the time is free again
    with pytest.raises(AppointmentNotChangeable):
        reschedule(scheduling, appointment, a_bookable_start(time(14, 0)))


def test_a_revoked_consent_cancels_future_infusions_as_the_clinic_and_releases_holds_once(
        scheduling, register, add_nurse, appointments, scheduling_events):
    add_nurse("nur_kim", "CO")
    patient = register()
    infusion = book(scheduling, patient, a_bookable_start(time(10, 0)))
    consultation = book(scheduling, patient, a_bookable_start(time(14, 0)), visit_type="consult")
    hold = call(scheduling, "place_hold", {"patient_id": patient, "visit_type": "iv-mood",
                                           "start_at": a_bookable_start(time(10, 0), days_ahead=4)})

    consent_revoked(scheduling, patient)
    consent_revoked(scheduling, patient)  # redelivered

    assert call(scheduling, "get_appointment", infusion["id"])["status"] == "cancelled"
    assert call(scheduling, "get_appointment", consultation["id"])["status"] == "booked"
    assert call(scheduling, "get_hold", hold["id"])["status"] == "expired"
    (event,) = scheduling_events.of_type("appointment.cancelled", 1)
    assert (event["payload"]["by"], event["payload"]["reason"]) == ("clinic", "consent_revoked")
    scheduling_events.of_type("hold.expired", 1)
    assert [e["type"] for e in scheduling_events.events].count("appointment.cancelled") == 1
