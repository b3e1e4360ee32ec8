"""Intake over RPC, on the real broker and the real store.

A patient registers once per email address; what they send is validated before anything is stored; the
registration and its ``patient.registered`` event are written together and the event reaches whoever
listens on ``intake.events``; scheduling asks ``booking_eligibility`` before every booking.
"""

import copy
from contextlib import ExitStack
from datetime import date

import eventlet
import pytest
from kombu import Connection, Queue
from nameko.events import get_event_exchange
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook

from chassis.errors import InvalidInput
from chassis.testing import wait_for
from services.intake.dependencies import load_booking_rules
from services.intake.exceptions import PatientAlreadyRegistered, PatientNotFound
from services.intake.walkthrough import VISIT_DETAILS, clear_over_rpc


def a_registration(**changes) -> dict:
    registration = {
        "first_name": "Ana", "last_name": "Diaz", "email": "ana@example.com", "phone": "+13035550100",
        "date_of_birth": "1985-04-02",
        "address": {"line1": "1 Main St", "city": "Denver", "state": "CO", "postal_code": "80202"},
        "time_zone": "America/Denver", "sms_opt_in": True, **copy.deepcopy(VISIT_DETAILS),
    }
    address = changes.pop("address", {})
    registration.update(changes)
    registration["address"].update(address)
    return registration


@pytest.fixture
def patients(mongo_client, database_prefix):
    return mongo_client[database_prefix + "intake"].patients


def call(container, method, *args, **kwargs):
    with entrypoint_hook(container, method) as entrypoint:
        return entrypoint(*args, **kwargs)


def test_registering_stores_the_patient_and_returns_their_record(intake, patients):
    patient = call(intake, "register_patient", a_registration())

    assert patient["id"].startswith("pat_")
    assert patient["status"] == "registered"
    assert patient["date_of_birth"] == "1985-04-02"
    stored = patients.find_one({"_id": patient["id"]})
    assert stored["email"] == "ana@example.com"
    assert stored["address"]["state"] == "CO"
    fetched = call(intake, "get_patient", patient["id"])
    assert fetched == patient  # what was returned is exactly what is read back


def test_a_registration_is_announced_on_the_intake_exchange_with_contact_details_only(intake, patients,
                                                                                       service_config):
    listener = Queue("test.intake-listener", exchange=get_event_exchange("intake", service_config),
                     routing_key="patient.registered", durable=False)
    with Connection(service_config["AMQP_URI"]) as connection:
        bound = listener(connection.default_channel)
        bound.declare()

        patient = call(intake, "register_patient", a_registration(email="Ana@Example.com"))
        message = wait_for(lambda: bound.get(no_ack=True, accept=["json"]))

    event = message.decode()
    assert (event["type"], event["version"], event["producer"]) == ("patient.registered", 1, "intake")
    assert event["payload"] == {
        "patient_id": patient["id"], "first_name": "Ana", "email": "ana@example.com",
        "phone": "+13035550100", "time_zone": "America/Denver", "sms_opt_in": True, "locale": None,
    }  # no date of birth, no address: notifications only needs to reach the patient
    assert wait_for(lambda: patients.find_one({"_id": patient["id"]})["outbox"] == [])


@pytest.mark.parametrize(("registration", "bad_field"), [
    ({k: v for k, v in a_registration().items() if k != "email"}, "email"),
    (a_registration(email="ana.example.com"), "email"),
    (a_registration(phone="303-555-0100"), "phone"),
    (a_registration(time_zone="America/Gotham"), "time_zone"),
    (a_registration(insurance_id="XYZ-1"), "insurance_id"),
    (a_registration(email={"$gt": ""}), "email"),
    (a_registration(last_name={"$ne": None}), "last_name"),
    (a_registration(address={"state": "ZZ"}), "address"),  # two capital letters, but no US state
    (a_registration(weight_kg=29.5), "weight_kg"),
    (a_registration(weight_kg=301), "weight_kg"),
    ({k: v for k, v in a_registration().items() if k != "escort"}, "escort"),
])
def test_an_invalid_registration_is_refused_field_by_field_and_nothing_is_stored(intake, patients,
                                                                                 registration, bad_field):
    with pytest.raises(InvalidInput) as refused:
        call(intake, "register_patient", copy.deepcopy(registration))

    assert list(refused.value.details["errors"]) == [bad_field]
    assert patients.count_documents({}) == 0


def test_an_email_is_registered_once_whatever_its_case(intake, patients):
    first = call(intake, "register_patient", a_registration(email="Ana.Diaz@Example.com"))

    with pytest.raises(PatientAlreadyRegistered) as refused:
        call(intake, "register_patient", a_registration(email="ana.diaz@EXAMPLE.COM", first_name="Anita"))

    assert refused.value.status == 409 and refused.value.code == "patient_already_registered"
    assert [p["_id"] for p in patients.find()] == [first["id"]]


def test_a_new_patient_may_book_the_free_consultation_and_infusions_once_cleared(intake):
    patient = call(intake, "register_patient", a_registration())

    assert call(intake, "booking_eligibility", patient["id"], "consult") == {
        "patient_id": patient["id"], "eligible": True, "reasons": [],
        "rules_version": load_booking_rules().effective_at().version,
        "state": "CO", "postal_code": "80202", "location": {"latitude": 39.7491, "longitude": -104.9946},
        "time_zone": "America/Denver",
    }
    before = call(intake, "booking_eligibility", patient["id"], "iv-mood")
    assert before["eligible"] is False
    assert before["reasons"] == ["screening_incomplete", "consent_missing", "not_cleared"]

    clear_over_rpc(lambda method, *args, **kwargs: call(intake, method, *args, **kwargs), patient["id"])

    assert call(intake, "booking_eligibility", patient["id"], "iv-mood")["eligible"] is True
    assert call(intake, "booking_eligibility", patient["id"])["eligible"] is True


def test_a_minor_in_a_state_not_served_is_given_both_reasons(intake):
    seventeen_at_most = date(date.today().year - 17, 1, 1).isoformat()
    patient = call(intake, "register_patient", a_registration(
        date_of_birth=seventeen_at_most, address={"state": "OR", "city": "Portland", "postal_code": "97201"},
        time_zone="America/Los_Angeles"))

    answer = call(intake, "booking_eligibility", patient["id"], "consult")

    assert answer["eligible"] is False
    assert answer["reasons"] == ["under_minimum_age", "state_not_served"]
    assert answer["rules_version"] == load_booking_rules().effective_at().version


@pytest.mark.parametrize("method", ["get_patient", "booking_eligibility", "care_team"])
@pytest.mark.parametrize("patient_id", ["pat_nobody", {"$ne": None}])  # an operator object matches nobody
def test_an_unknown_patient_is_not_found(intake, method, patient_id):
    call(intake, "register_patient", a_registration())

    with pytest.raises(PatientNotFound) as missing:
        call(intake, method, patient_id)

    assert missing.value.status == 404 and missing.value.details == {"patient_id": patient_id}


def test_two_registrations_of_one_email_racing_each_other_store_one_patient(intake, patients, service_config):
    # Real RPC, one caller each, connected before the race (concurrent entrypoint_hooks would see one result).
    with ExitStack() as callers:
        proxies = [callers.enter_context(ServiceRpcProxy("intake", service_config, timeout=30)) for _ in range(5)]

        def try_to_register(proxy):
            try:
                return proxy.register_patient(a_registration(email="race@example.com"))
            except RemoteError as refused:
                return refused

        outcomes = list(eventlet.GreenPool(5).imap(try_to_register, proxies))

    registered = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, RemoteError) and o.exc_type == "PatientAlreadyRegistered"]
    assert (len(registered), len(refused)) == (1, 4), outcomes
    assert [p["_id"] for p in patients.find()] == [registered[0]["id"]]


def test_a_clinician_made_responsible_for_a_patient_is_their_care_team(intake, patients):
    ana = call(intake, "register_patient", a_registration())
    bea = call(intake, "register_patient", a_registration(email="bea@example.com"))
    assert call(intake, "care_team", ana["id"]) == {"patient_id": ana["id"], "clinician_id": None}

    assigned = call(intake, "assign_clinician", ana["id"], "clin_rivera")

    assert assigned["clinician_id"] == "clin_rivera"
    assert call(intake, "care_team", ana["id"])["clinician_id"] == "clin_rivera"
    assert call(intake, "patients_in_care_of", "clin_rivera") == [ana["id"]]
    assert call(intake, "patients_in_care_of", "clin_other") == []
    assert call(intake, "care_team", bea["id"])["clinician_id"] is None


def test_a_clinician_cannot_be_assigned_to_a_patient_who_does_not_exist_or_by_a_bad_id(intake):
    with pytest.raises(PatientNotFound):
        call(intake, "assign_clinician", "pat_nobody", "clin_rivera")
    ana = call(intake, "register_patient", a_registration())
    with pytest.raises(InvalidInput):
        call(intake, "assign_clinician", ana["id"], {"$gt": ""})
