"""Booking a home visit over RPC, with intake (and billing) running beside scheduling, on the real broker and store.

Scheduling asks intake whether the patient is cleared, checks the calendar, then claims the slots of the
first free licensed nurse. The store's unique index on slot keys is the only lock: it must hold when
many bookings race for the same nurse at the same time.
"""

from contextlib import ExitStack
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import eventlet
import pytest
from kombu import Connection, Queue
from marshmallow import EXCLUDE
from nameko.events import get_event_exchange
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from chassis.errors import InvalidInput, RemoteDomainError
from chassis.testing import wait_for
from services.billing.schemas import AppointmentBooked as BillingReadsBooked
from services.notifications.schemas import AppointmentBooked as NotificationsReadsBooked
from services.scheduling.dependencies import load_calendar
from services.scheduling.exceptions import (
    AppointmentNotFound,
    InvalidVisitType,
    NoNurseAvailable,
    NurseCannotServePatient,
    NurseNotFound,
    PatientAlreadyBooked,
    PatientNotCleared,
    TimeNotBookable,
)
from services.scheduling.tests.examples import nurse_record
from services.scheduling.tests.interface.support import DENVER, a_bookable_start, book, call


def test_a_cleared_patient_is_booked_with_a_licensed_nurse(scheduling, register, add_nurse, appointments):
    add_nurse("nur_kim", "CO")
    add_nurse("nur_lee", "NY")
    patient = register()
    start_at = a_bookable_start(time(10, 0))

    appointment = book(scheduling, patient, start_at)

    assert appointment["nurse_id"] == "nur_kim"
    assert appointment["status"] == "booked"
    assert datetime.fromisoformat(appointment["start_at"]) == datetime.fromisoformat(start_at)
    assert datetime.fromisoformat(appointment["end_at"]) - datetime.fromisoformat(start_at) == timedelta(hours=2)
    local_start = datetime.fromisoformat(appointment["local_start"])
    assert local_start.time() == time(10, 0)
    assert local_start.utcoffset() == datetime.fromisoformat(start_at).astimezone(ZoneInfo(DENVER)).utcoffset()
    assert appointment["calendar_version"] == load_calendar().effective_at().version
    stored = appointments.find_one({"_id": appointment["id"]})
    # 2 hours of the nurse's time and the same 2 hours of the patient's, in 5-minute cells; no travel buffer
    nurse_keys = [key for key in stored["slot_keys"] if key.startswith("nur_")]
    assert (len(nurse_keys), len(stored["slot_keys"])) == (24, 48)
    fetched = call(scheduling, "get_appointment", appointment["id"])
    assert fetched == appointment  # what was returned is exactly what is read back


@pytest.mark.parametrize(("state", "date_of_birth", "reasons"), [
    ("OR", "1985-04-02", ["state_not_served"]),
    ("CO", f"{datetime.now(UTC).year - 17}-01-01", ["under_minimum_age"]),
])
def test_a_patient_who_is_not_eligible_may_not_book(scheduling, register, add_nurse, appointments,
                                                    state, date_of_birth, reasons):
    add_nurse("nur_kim", "CO", "OR")
    patient = register(state=state, date_of_birth=date_of_birth)

    with pytest.raises(PatientNotCleared) as refused:
        book(scheduling, patient, a_bookable_start())

    assert refused.value.code == "patient_not_cleared"
    assert refused.value.details["reasons"] == reasons
    assert refused.value.details["rules_version"]
    assert appointments.count_documents({}) == 0


def test_a_patient_intake_does_not_know_may_not_book(scheduling, add_nurse, appointments):
    add_nurse("nur_kim", "CO")

    with pytest.raises(RemoteDomainError) as refused:
        book(scheduling, "pat_nobody", a_bookable_start())

    assert (refused.value.status, refused.value.code) == (404, "patient_not_found")
    assert appointments.count_documents({}) == 0


@pytest.mark.parametrize(("start_at", "reason"), [
    (lambda: a_bookable_start(time(10, 5)), "start_not_on_slot"),
    (lambda: a_bookable_start(time(7, 0)), "outside_visit_hours"),
    (lambda: a_bookable_start(time(17, 30)), "ends_too_late"),
    (lambda: a_bookable_start(days_ahead=0, local_time=time(23, 45)), "too_soon"),
    (lambda: a_bookable_start(days_ahead=120), "too_far_ahead"),
])
def test_a_time_the_calendar_does_not_allow_is_refused(scheduling, register, add_nurse, appointments,
                                                       start_at, reason):
    add_nurse("nur_kim", "CO")
    patient = register()

    with pytest.raises(TimeNotBookable) as refused:
        book(scheduling, patient, start_at())

    assert refused.value.details["reason"] == reason
    assert appointments.count_documents({}) == 0


def test_an_unknown_visit_type_is_refused_as_invalid(scheduling, register, add_nurse):
    add_nurse("nur_kim", "CO")
    with pytest.raises(InvalidVisitType) as refused:
        book(scheduling, register(), a_bookable_start(), visit_type="iv-party")
    assert refused.value.details["errors"] == {"visit_type": ["unknown visit type"]}


def test_a_booking_request_without_a_time_zone_on_its_start_is_refused(scheduling, register):
    with pytest.raises(InvalidInput) as refused:
        book(scheduling, register(), a_bookable_start()[:19])  # "2026-11-26T17:00:00", no offset
    assert list(refused.value.details["errors"]) == ["start_at"]


def test_when_a_nurse_is_taken_the_next_licensed_nurse_gets_the_visit_then_none_is_left(
        scheduling, register, add_nurse, appointments):
    add_nurse("nur_kim", "CO")
    add_nurse("nur_zoe", "CO", "NY")
    add_nurse("nur_lee", "NY")                # free, but may not practise in Colorado
    add_nurse("nur_max", "CO", active=False)  # licensed, but no longer takes visits
    start_at = a_bookable_start()

    first = book(scheduling, register(), start_at)
    second = book(scheduling, register(), start_at)
    with pytest.raises(NoNurseAvailable) as refused:
        book(scheduling, register(), start_at)

    assert (first["nurse_id"], second["nurse_id"]) == ("nur_kim", "nur_zoe")
    assert (refused.value.status, refused.value.code) == (409, "slot_taken")
    assert appointments.count_documents({}) == 2


@pytest.mark.parametrize(("second_start", "booked"), [
    (time(11, 0), False),   # during the first visit
    (time(12, 0), False),   # right after it: no time to travel
    (time(12, 15), True),   # the travel between the two addresses (the 15-minute minimum) fits in between
])
def test_a_nurse_is_never_booked_into_overlapping_visits_or_their_travel_time(scheduling, register, add_nurse,
                                                                             appointments, second_start, booked):
    add_nurse("nur_kim", "CO")
    book(scheduling, register(), a_bookable_start(time(10, 0)))  # 10:00 to 12:00

    if booked:
        assert book(scheduling, register(), a_bookable_start(second_start), nurse_id="nur_kim")["nurse_id"] == "nur_kim"
    else:
        with pytest.raises(NoNurseAvailable):
            book(scheduling, register(), a_bookable_start(second_start), nurse_id="nur_kim")
    assert appointments.count_documents({}) == (2 if booked else 1)


def test_asking_for_a_nurse_who_does_not_exist_is_reported_as_nurse_not_found(scheduling, register, add_nurse,
                                                                              appointments):
    add_nurse("nur_kim", "CO")

    with pytest.raises(NurseNotFound) as missing:
        book(scheduling, register(), a_bookable_start(), nurse_id="nur_kym")  # a typo

    assert missing.value.status == 404
    assert appointments.count_documents({}) == 0


def test_asking_for_a_nurse_not_licensed_where_the_patient_lives_is_refused(scheduling, register, add_nurse,
                                                                          appointments):
    add_nurse("nur_tex", "TX")

    with pytest.raises(NurseCannotServePatient) as refused:
        book(scheduling, register(), a_bookable_start(), nurse_id="nur_tex")  # the patient lives in Colorado

    assert (refused.value.status, refused.value.code) == (422, "nurse_cannot_serve_patient")
    assert appointments.count_documents({}) == 0


def test_ten_patients_racing_for_the_same_nurse_and_time_book_exactly_one_visit(scheduling, register, add_nurse,
                                                                                appointments, service_config):
    add_nurse("nur_kim", "CO")
    patients = [register() for _ in range(10)]
    start_at = a_bookable_start()

    # Real RPC over the broker, one caller per patient, connected before the race starts. (Concurrent
    # entrypoint_hooks cannot be used: each returns the result of whichever worker finishes first.)
    with ExitStack() as callers:
        proxies = [callers.enter_context(ServiceRpcProxy("scheduling", service_config, timeout=30))
                   for _ in patients]

        def try_to_book(proxy, patient_id):
            try:
                return proxy.book_appointment({"patient_id": patient_id, "visit_type": "iv-mood",
                                               "start_at": start_at, "nurse_id": "nur_kim"})
            except RemoteError as refused:
                return refused

        outcomes = list(eventlet.GreenPool(10).starmap(try_to_book, zip(proxies, patients, strict=True)))

    booked = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, RemoteError) and o.exc_type == "NoNurseAvailable"]
    assert (len(booked), len(refused)) == (1, 9), outcomes
    assert [a["_id"] for a in appointments.find()] == [booked[0]["id"]]


def test_the_booked_event_carries_what_billing_and_notifications_need(scheduling, register, add_nurse,
                                                                      appointments, service_config):
    add_nurse("nur_kim", "CO")
    patient = register()
    listener = Queue("test.scheduling-listener", exchange=get_event_exchange("scheduling", service_config),
                     routing_key="appointment.booked", durable=False)
    with Connection(service_config["AMQP_URI"]) as connection:
        bound = listener(connection.default_channel)
        bound.declare()

        appointment = book(scheduling, patient, a_bookable_start(), visit_type="consult")
        event = wait_for(lambda: bound.get(no_ack=True, accept=["json"])).decode()

    assert (event["type"], event["version"], event["producer"]) == ("appointment.booked", 1, "scheduling")
    payload = event["payload"]
    assert payload == {
        "appointment_id": appointment["id"], "patient_id": patient, "nurse_id": "nur_kim",
        "visit_type": "consult", "start_at": payload["start_at"], "end_at": payload["end_at"],
        "time_zone": DENVER, "postal_code": "80202",  # billing's travel zone; no street, no health data
    }
    assert datetime.fromisoformat(payload["start_at"]) == datetime.fromisoformat(appointment["start_at"])
    # each consumer's own tolerant schema reads it without complaint
    assert BillingReadsBooked(unknown=EXCLUDE).validate(payload) == {}
    assert NotificationsReadsBooked(unknown=EXCLUDE).validate(payload) == {}
    assert wait_for(lambda: appointments.find_one({"_id": appointment["id"]})["outbox"] == [])


@pytest.mark.parametrize("appointment_id", ["apt_nobody", {"$ne": None}])  # an operator object matches nothing
def test_an_unknown_appointment_is_not_found(scheduling, register, add_nurse, appointment_id):
    add_nurse("nur_kim", "CO")
    book(scheduling, register(), a_bookable_start())

    with pytest.raises(AppointmentNotFound) as missing:
        call(scheduling, "get_appointment", appointment_id)

    assert missing.value.status == 404


@pytest.mark.parametrize(("nurse", "bad_field"), [
    ({"id": "kim"}, "id"),
    ({"licences": []}, "licences"),
    ({"licences": [{"state": "WU", "number": "RN-1", "expires_on": "2030-01-01"}]}, "licences"),
    ({"name": {"$gt": ""}}, "name"),
])
def test_a_nurse_with_a_bad_record_is_refused(scheduling, nurse, bad_field):
    with pytest.raises(InvalidInput) as refused:
        call(scheduling, "add_nurse", {"id": "nur_kim", **nurse_record("Kim"), **nurse})
    assert list(refused.value.details["errors"]) == [bad_field]
    assert call(scheduling, "list_nurses")["items"] == []


def test_a_nurse_record_is_replaced_by_id(scheduling, add_nurse):
    add_nurse("nur_kim", "CO")
    add_nurse("nur_kim", "CO", "NY", active=False)
    (kim,) = call(scheduling, "list_nurses")["items"]
    assert (kim["id"], kim["licensed_states"], kim["active"]) == ("nur_kim", ["CO", "NY"], False)


def test_nurses_are_listed_a_page_at_a_time_in_id_order(scheduling, add_nurse):
    for nurse_id in ("nur_cy", "nur_al", "nur_bo"):
        add_nurse(nurse_id, "CO")
    first = call(scheduling, "list_nurses", limit=2)
    second = call(scheduling, "list_nurses", cursor=first["next_cursor"], limit=2)
    assert [n["id"] for n in first["items"] + second["items"]] == ["nur_al", "nur_bo", "nur_cy"]
    assert second["next_cursor"] is None


def test_one_patient_never_holds_two_overlapping_visits_even_with_different_nurses(scheduling, register, add_nurse,
                                                                                 appointments):
    add_nurse("nur_kim", "CO")
    add_nurse("nur_zoe", "CO")
    patient = register()
    first = book(scheduling, patient, a_bookable_start(time(10, 0)))  # 10:00 to 12:00 with Kim

    with pytest.raises(PatientAlreadyBooked) as refused:
        book(scheduling, patient, a_bookable_start(time(11, 0)))       # Zoe is free, the patient is not

    assert (refused.value.status, refused.value.code) == (409, "patient_has_overlapping_visit")
    assert [a["_id"] for a in appointments.find()] == [first["id"]]
    assert book(scheduling, patient, a_bookable_start(time(12, 0)))["nurse_id"] == "nur_zoe"  # right after: fine


def test_the_same_booking_operation_executed_twice_books_once(register, add_nurse, appointments, service_config):
    """A retry after a lost answer, or the request redelivered after a crash, carries the same operation key:
    the second execution finds the first appointment instead of booking the next nurse."""
    add_nurse("nur_kim", "CO")
    add_nurse("nur_zoe", "CO")
    request = {"patient_id": register(), "visit_type": "iv-mood", "start_at": a_bookable_start()}

    answers = []
    for _ in range(2):
        with ServiceRpcProxy("scheduling", service_config, context_data={"operation_key": "op-123"}) as scheduling:
            answers.append(scheduling.book_appointment(request))
    with ServiceRpcProxy("scheduling", service_config, context_data={"operation_key": "op-456"}) as scheduling:
        another_operation = scheduling.book_appointment({**request, "patient_id": register()})

    assert answers[0] == answers[1]
    assert another_operation["id"] != answers[0]["id"] and another_operation["nurse_id"] == "nur_zoe"
    assert appointments.count_documents({}) == 2
    assert appointments.find_one({"_id": answers[0]["id"]})["operation_key"] == "op-123"
