"""Notifications on the real broker and store: patients hear about their bookings and invoices, once.

Intake's ``patient.registered`` gives notifications the patient's contact details; scheduling's
``appointment.booked`` and billing's ``invoice.created`` become messages. Events come in any order and
at least once: a confirmation whose contact details have not arrived yet is retried until they do, and
an event delivered twice sends nothing twice.
"""

from datetime import UTC, datetime, timedelta

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

import services.billing.events  # noqa: F401  (each import registers its producer's schemas for make_event)
import services.intake.events  # noqa: F401
import services.scheduling.events  # noqa: F401
from chassis.dlq import DeadLetterQueue
from chassis.events import make_event
from chassis.testing import wait_for
from services.notifications.dependencies import load_message_catalogue
from services.notifications.exceptions import ContactUnknown
from services.notifications.service import NotificationsService

VISIT_START = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)  # 10:00 in Denver


def registered(patient_id: str = "pat_ana", sms_opt_in: bool = True, first_name: str = "Ana") -> dict:
    return make_event("intake", "patient.registered", {
        "patient_id": patient_id, "first_name": first_name, "email": f"{first_name.lower()}@example.com",
        "phone": "+13035550100", "time_zone": "America/Denver", "sms_opt_in": sms_opt_in,
    }, correlation_id=None)


def booked(patient_id: str = "pat_ana", appointment_id: str = "apt_1") -> dict:
    return make_event("scheduling", "appointment.booked", {
        "appointment_id": appointment_id, "patient_id": patient_id, "nurse_id": "nur_kim", "visit_type": "iv-mood",
        "start_at": VISIT_START, "end_at": VISIT_START + timedelta(hours=2), "time_zone": "America/Denver",
    }, correlation_id=None)


def invoiced(patient_id: str = "pat_ana") -> dict:
    return make_event("billing", "invoice.created", {
        "invoice_id": "inv_1", "appointment_id": "apt_1", "patient_id": patient_id, "currency": "usd",
        "total_cents": 100000, "visit_start_at": VISIT_START,
    }, correlation_id=None)


def start_notifications(container_factory, config):
    container = container_factory(NotificationsService, config)
    container.start()
    return container


@pytest.fixture
def notifications(container_factory, service_config):
    return start_notifications(container_factory, service_config)


@pytest.fixture
def publish(service_config):
    dispatch = event_dispatcher(service_config)
    return lambda event: dispatch(event["producer"], event["type"], event)


@pytest.fixture
def messages(mongo_client, database_prefix):
    return mongo_client[database_prefix + "notifications"].messages


def after_handling(count: int = 1, failing: type[Exception] | None = None):
    """An entrypoint_waiter callback: let go after ``count`` deliveries (that failed with ``failing``)."""
    handled = []

    def callback(worker_ctx, result, exc_info):
        if failing is None or (exc_info is not None and issubclass(exc_info[0], failing)):
            handled.append(worker_ctx)
        return len(handled) == count

    return callback


def known_contact(notifications, publish, event: dict) -> None:
    with entrypoint_waiter(notifications, "remember_contact"):
        publish(event)


def list_messages(notifications, patient_id: str) -> list[dict]:
    with entrypoint_hook(notifications, "list_messages") as entrypoint:
        return entrypoint(patient_id)["items"]


@pytest.mark.parametrize(("sms_opt_in", "channels"), [(True, ["email", "sms"]), (False, ["email"])])
def test_a_booking_is_confirmed_by_email_and_by_text_only_with_consent(notifications, publish, messages,
                                                                        sms_opt_in, channels):
    known_contact(notifications, publish, registered(sms_opt_in=sms_opt_in))

    with entrypoint_waiter(notifications, "confirm_appointment"):
        publish(booked())

    sent = {m["channel"]: m for m in list_messages(notifications, "pat_ana")}
    assert sorted(sent) == channels
    email = sent["email"]
    assert (email["to"], email["subject"], email["kind"]) == ("ana@example.com", "Your appointment is confirmed",
                                                             "appointment.booked")
    assert "Hello Ana" in email["body"]
    assert "Thursday, November 26 at 10:00 AM MST" in email["body"]  # in the patient's time zone
    assert email["templates_version"] == load_message_catalogue().effective_at().version
    if sms_opt_in:
        assert sent["sms"]["to"] == "+13035550100" and sent["sms"]["subject"] is None
        assert "10:00 AM MST" in sent["sms"]["body"]
    assert messages.count_documents({}) == len(channels)


def test_a_booking_announced_before_the_patients_contact_details_is_confirmed_once_they_arrive(
        container_factory, service_config, publish, messages):
    # a registration may lag a booking by a few seconds: give the retries room to wait for it
    notifications = start_notifications(container_factory, {**service_config, "EVENT_RETRY_DELAYS": [0.5, 1, 2, 4]})
    booking = booked()

    with entrypoint_waiter(notifications, "confirm_appointment", callback=after_handling(failing=ContactUnknown)):
        publish(booking)  # nobody knows how to reach pat_ana yet: the confirmation fails and waits
    assert messages.count_documents({}) == 0

    publish(registered(sms_opt_in=True))

    sent = wait_for(lambda: messages.count_documents({}) == 2 and list(messages.find()))
    assert sorted(m["channel"] for m in sent) == ["email", "sms"]
    assert {m["caused_by"] for m in sent} == {booking["event_id"]}
    assert DeadLetterQueue(service_config["AMQP_URI"]).list() == []


def test_the_same_booking_delivered_twice_is_confirmed_once(notifications, publish, messages):
    known_contact(notifications, publish, registered(sms_opt_in=True))
    booking = booked()

    with entrypoint_waiter(notifications, "confirm_appointment", callback=after_handling(2)):
        publish(booking)
        publish(booking)

    assert sorted(m["channel"] for m in messages.find()) == ["email", "sms"]


def test_an_invoice_is_announced_by_email_with_its_amount_and_the_local_visit_date(notifications, publish):
    known_contact(notifications, publish, registered(sms_opt_in=True))

    with entrypoint_waiter(notifications, "announce_invoice"):
        publish(invoiced())

    [email] = list_messages(notifications, "pat_ana")  # invoices have no SMS template: email only
    assert (email["channel"], email["subject"], email["kind"]) == ("email", "Your invoice is ready", "invoice.created")
    assert "An invoice of $1,000.00 for your visit on November 26, 2026" in email["body"]


def test_each_patient_sees_only_their_own_messages(notifications, publish):
    known_contact(notifications, publish, registered("pat_ana", sms_opt_in=False, first_name="Ana"))
    known_contact(notifications, publish, registered("pat_bo", sms_opt_in=False, first_name="Bo"))

    with entrypoint_waiter(notifications, "confirm_appointment", callback=after_handling(2)):
        publish(booked("pat_ana", "apt_1"))
        publish(booked("pat_bo", "apt_2"))

    assert [(m["to"], m["patient_id"]) for m in list_messages(notifications, "pat_bo")] == [
        ("bo@example.com", "pat_bo")]
    assert [m["to"] for m in list_messages(notifications, "pat_ana")] == ["ana@example.com"]
    assert list_messages(notifications, "pat_nobody") == []
