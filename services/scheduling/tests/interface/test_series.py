"""Treatment series on the real broker and store: a clearance with a protocol plans a series; its sessions are
booked one by one inside the dates the protocol allows, the booking events name the series, a session moved
keeps the series within those dates, and a held session paid after another session took its day fails."""

from datetime import UTC, datetime, time

import pytest
from nameko.testing.services import entrypoint_hook

from chassis.events import Event
from chassis.ids import derived_id
from services.scheduling.exceptions import SeriesNotFound, TimeNotBookable
from services.scheduling.tests.interface.support import a_bookable_start, book, call, deposit_paid, place_hold


def cleared(scheduling, patient_id: str, protocol_code: str = "depression-induction", planned: int | None = 6):
    event = Event("evt_cleared_1", "patient.cleared", 1, datetime.now(UTC), "c-test", "intake",
                  {"patient_id": patient_id, "review_id": "rev_1", "protocol_code": protocol_code,
                   "planned_sessions": planned})
    with entrypoint_hook(scheduling, "plan_series") as handle:
        handle(event)


def a_cleared_patients_series(scheduling, register, add_nurse) -> tuple[str, dict]:
    """A new patient in Denver, cleared for the induction (a nurse there): the patient and the series planned."""
    add_nurse("nur_kim", "CO")
    patient = register()
    cleared(scheduling, patient)
    (series,) = call(scheduling, "patient_series", patient)
    return patient, series


def test_a_cleared_patient_books_the_sessions_of_a_series_inside_the_protocols_dates(
        scheduling, register, add_nurse, scheduling_events):
    add_nurse("nur_kim", "CO")
    patient = register()
    cleared(scheduling, patient)
    cleared(scheduling, patient)  # redelivered: still one series

    (series,) = call(scheduling, "patient_series", patient)
    assert (series["id"], series["visit_type"], series["planned_sessions"]) == (
        derived_id("ser", patient, "rev_1"), "iv-mood", 6)
    assert (series["next"]["kind"], series["next"]["number"]) == ("session", 1)

    first = book(scheduling, patient, a_bookable_start(time(10, 0), days_ahead=3), series_id=series["id"])
    with pytest.raises(TimeNotBookable) as same_day:  # at least a day between two sessions
        book(scheduling, patient, a_bookable_start(time(15, 0), days_ahead=3), series_id=series["id"])
    second = book(scheduling, patient, a_bookable_start(time(10, 0), days_ahead=5), series_id=series["id"])

    assert same_day.value.details["reason"] == "outside_series_window"
    (after,) = call(scheduling, "patient_series", patient)
    assert [s["appointment_id"] for s in after["sessions"]] == [first["id"], second["id"]]
    assert after["next"]["number"] == 3
    events = scheduling_events.of_type("appointment.booked", 2)
    assert {event["payload"]["series_id"] for event in events} == {series["id"]}


def test_an_unknown_protocol_uses_the_default_and_a_stranger_s_series_is_not_found(scheduling, register, add_nurse):
    add_nurse("nur_kim", "CO")
    patient, stranger = register(), register()
    cleared(scheduling, patient, protocol_code="a-new-protocol", planned=None)

    (series,) = call(scheduling, "patient_series", patient)

    assert (series["protocol"], series["protocol_code"], series["planned_sessions"]) == (
        "depression-induction", "a-new-protocol", 6)
    with pytest.raises(SeriesNotFound):
        book(scheduling, stranger, a_bookable_start(), series_id=series["id"])


def test_a_series_session_moved_keeps_the_series_inside_its_rules(scheduling, register, add_nurse):
    patient, series = a_cleared_patients_series(scheduling, register, add_nurse)
    first = book(scheduling, patient, a_bookable_start(time(10, 0), days_ahead=3), series_id=series["id"])
    second = book(scheduling, patient, a_bookable_start(time(10, 0), days_ahead=5), series_id=series["id"])

    with pytest.raises(TimeNotBookable) as crowded:  # onto the first session's day
        call(scheduling, "reschedule_appointment", second["id"],
             {"start_at": a_bookable_start(time(15, 0), days_ahead=3)})
    with pytest.raises(TimeNotBookable) as stretched:  # 14 days is the whole induction's span from its first
        call(scheduling, "reschedule_appointment", second["id"],
             {"start_at": a_bookable_start(time(10, 0), days_ahead=20)})
    moved = call(scheduling, "reschedule_appointment", second["id"],
                 {"start_at": a_bookable_start(time(10, 0), days_ahead=6)})

    assert crowded.value.details["reason"] == stretched.value.details["reason"] == "outside_series_window"
    assert datetime.fromisoformat(moved["start_at"]) == datetime.fromisoformat(
        a_bookable_start(time(10, 0), days_ahead=6))
    (after,) = call(scheduling, "patient_series", patient)
    assert [s["appointment_id"] for s in after["sessions"]] == [first["id"], second["id"]]


def test_two_held_sessions_of_a_series_on_one_day_the_second_paid_fails_and_is_refunded(
        scheduling, register, add_nurse, scheduling_events):
    patient, series = a_cleared_patients_series(scheduling, register, add_nurse)
    morning = place_hold(scheduling, patient, a_bookable_start(time(9, 0), days_ahead=3), series_id=series["id"])
    afternoon = place_hold(scheduling, patient, a_bookable_start(time(15, 0), days_ahead=3), series_id=series["id"])

    deposit_paid(scheduling, morning)
    deposit_paid(scheduling, afternoon)  # the morning's session, booked since, leaves no room that day

    assert call(scheduling, "get_hold", morning["id"])["status"] == "booked"
    assert call(scheduling, "get_hold", afternoon["id"])["status"] == "failed"
    (failed,) = scheduling_events.of_type("booking.failed", 1)
    assert (failed["payload"]["hold_id"], failed["payload"]["reason"]) == (afternoon["id"], "outside_series_window")
