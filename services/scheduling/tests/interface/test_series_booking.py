"""Several sessions of a series booked at once, all or nothing, on the real broker and store: each session obeys
the series' rules, one that cannot be claimed releases those claimed before it (the answer names it), a retry
of the same operation answers the first result, and a booking left unfinished is settled by its decision."""

from datetime import UTC, datetime, time, timedelta

import pytest
from nameko.testing.services import entrypoint_hook

from services.scheduling.exceptions import SeriesSessionNotBookable, TimeNotBookable
from services.scheduling.tests.interface.support import a_bookable_start, book, call
from services.scheduling.tests.interface.test_series import cleared


def book_sessions(scheduling, patient_id: str, series_id: str, *start_ats: str, operation_key: str = "op-series-1"):
    with entrypoint_hook(scheduling, "book_series_sessions", context_data={"operation_key": operation_key}) as hook:
        return hook(patient_id, series_id, {"start_ats": list(start_ats)})


def sessions_at(*days_ahead: int) -> list[str]:
    return [a_bookable_start(time(10, 0), days_ahead=days) for days in days_ahead]


@pytest.fixture
def series(scheduling, register, add_nurse):
    add_nurse("nur_kim", "CO")
    patient = register()
    cleared(scheduling, patient)
    (planned,) = call(scheduling, "patient_series", patient)
    return planned


def test_the_sessions_of_a_series_are_booked_at_once_and_a_retry_answers_the_first_booking(
        scheduling, series, appointments, scheduling_events):
    starts = sessions_at(6, 3, 5)  # in any order

    booking = book_sessions(scheduling, series["patient_id"], series["id"], *starts)
    again = book_sessions(scheduling, series["patient_id"], series["id"], *starts)

    assert again == booking and booking["status"] == "booked"
    assert [a["start_at"] for a in booking["appointments"]] == sorted(
        datetime.fromisoformat(start).isoformat() for start in starts)
    assert {(a["status"], a["series_id"]) for a in booking["appointments"]} == {("booked", series["id"])}
    assert appointments.count_documents({}) == 3
    (after,) = call(scheduling, "patient_series", series["patient_id"])
    assert [s["appointment_id"] for s in after["sessions"]] == [a["id"] for a in booking["appointments"]]
    assert after["next"]["number"] == 4
    events = scheduling_events.of_type("appointment.booked", 3)
    assert sorted(e["payload"]["appointment_id"] for e in events) == sorted(a["id"] for a in booking["appointments"])
    assert {e["payload"]["series_id"] for e in events} == {series["id"]}


def test_a_session_that_cannot_be_claimed_releases_the_ones_claimed_before_it(
        scheduling, series, register, appointments, scheduling_events):
    other = book(scheduling, register(), a_bookable_start(time(10, 0), days_ahead=5))  # Kim, the only nurse
    starts = sessions_at(3, 5, 7)

    with pytest.raises(SeriesSessionNotBookable) as refused:
        book_sessions(scheduling, series["patient_id"], series["id"], *starts)
    with pytest.raises(SeriesSessionNotBookable) as retried:  # the same operation: the same answer
        book_sessions(scheduling, series["patient_id"], series["id"], *starts)

    assert (refused.value.status, refused.value.details["session"], refused.value.details["reason"]) == (
        409, 2, "slot_taken")
    assert datetime.fromisoformat(refused.value.details["start_at"]) == datetime.fromisoformat(starts[1])
    assert retried.value.details == refused.value.details
    claimed = list(appointments.find({"series_id": series["id"]}))
    assert [(c["status"], c["slot_keys"]) for c in claimed] == [("released", [])]  # session 1, given back
    assert call(scheduling, "patient_series", series["patient_id"])[0]["sessions"] == []
    # the compensated time is free again: the first session books one by one
    first = book(scheduling, series["patient_id"], starts[0], series_id=series["id"])
    booked = scheduling_events.of_type("appointment.booked", 2)
    assert [e["payload"]["appointment_id"] for e in booked] == [other["id"], first["id"]]  # nothing else


def test_sessions_outside_the_series_rules_are_refused_before_anything_is_claimed(scheduling, series, appointments):
    with pytest.raises(TimeNotBookable) as refused:  # the second is beyond the fortnight of the first
        book_sessions(scheduling, series["patient_id"], series["id"], *sessions_at(2, 20))

    assert (refused.value.details["reason"], refused.value.details["session"]) == ("outside_series_window", 2)
    assert appointments.count_documents({}) == 0


@pytest.mark.parametrize(("decided", "outcome"), [(True, "booked"), (False, "released")])
def test_a_booking_left_unfinished_is_rolled_forward_if_decided_and_released_if_not(
        scheduling, series, appointments, mongo_client, database_prefix, decided, outcome):
    booking = book_sessions(scheduling, series["patient_id"], series["id"], *sessions_at(3, 5))
    store = mongo_client[database_prefix + "scheduling"]
    lapsed = datetime.now(UTC) - timedelta(minutes=1)
    # As if the worker died after claiming both sessions, before (or after) recording the decision.
    store.series_bookings.update_one({"_id": booking["id"]}, {"$set": {
        "status": "booked" if decided else "claiming", "expires_at": lapsed}})
    store.appointments.update_many({"series_booking_id": booking["id"]}, {
        "$set": {"status": "claiming", "expires_at": lapsed}, "$unset": {"booked_at": ""}})

    with entrypoint_hook(scheduling, "settle_series_bookings") as settle:
        settle()

    assert {c["status"] for c in appointments.find({"series_booking_id": booking["id"]})} == {outcome}
    assert bool(store.appointments.count_documents({"series_booking_id": booking["id"], "slot_keys.0":
                                                    {"$exists": True}})) is decided
