"""Notifications on the real broker and store: patients hear about their bookings and invoices, once.

Intake's ``patient.registered`` gives notifications the patient's contact details (and the patient a welcome);
scheduling's ``appointment.booked`` and billing's ``invoice.created`` become messages in the delivery log.
Events come in any order and at least once: a confirmation whose contact details have not arrived yet waits
until they do (never dead-lettered for that), and an event delivered twice sends nothing twice.
"""

from datetime import UTC, datetime

from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from chassis.dlq import DeadLetterQueue
from chassis.testing import wait_for
from services.notifications.dependencies import load_message_catalogue
from services.notifications.exceptions import ContactUnknown
from services.notifications.tests.interface.conftest import DAYTIME, booked, event, registered

VISIT_START = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)  # 10:00 in Denver


def invoiced(patient_id: str = "pat_ana") -> dict:
    return event("billing", "invoice.created", {
        "invoice_id": "inv_1", "appointment_id": "apt_1", "patient_id": patient_id, "currency": "usd",
        "total_cents": 100000, "visit_start_at": VISIT_START})


def after_handling(count: int = 1, failing: type[Exception] | None = None):
    """An entrypoint_waiter callback: let go after ``count`` deliveries (that failed with ``failing``)."""
    handled = []

    def callback(worker_ctx, result, exc_info):
        if failing is None or (exc_info is not None and issubclass(exc_info[0], failing)):
            handled.append(worker_ctx)
        return len(handled) == count

    return callback


def known_contact(notifications, publish, registration: dict) -> None:
    with entrypoint_waiter(notifications, "remember_contact"):
        publish(registration)


def list_messages(notifications, patient_id: str, kind: str | None = None) -> list[dict]:
    with entrypoint_hook(notifications, "list_messages") as entrypoint:
        return [m for m in entrypoint(patient_id)["items"] if kind is None or m["kind"] == kind]


def test_a_booking_is_confirmed_by_email_and_by_text_only_with_consent(start_notifications, publish, db):
    notifications = start_notifications()
    known_contact(notifications, publish, registered("pat_ana", sms_opt_in=True))
    known_contact(notifications, publish, registered("pat_bo", sms_opt_in=False, first_name="Bo"))

    with entrypoint_waiter(notifications, "confirm_appointment", callback=after_handling(2)):
        publish(booked(VISIT_START, "pat_ana", "apt_1"))
        publish(booked(VISIT_START, "pat_bo", "apt_2"))

    sent = {m["channel"]: m for m in list_messages(notifications, "pat_ana", "appointment.booked")}
    assert sorted(sent) == ["email", "sms"]
    email = sent["email"]
    assert (email["to"], email["subject"]) == ("ana@example.com", "Your appointment is confirmed")
    assert "Hello Ana" in email["body"]
    assert "Thursday, November 26 at 10:00 AM MST" in email["body"]  # in the patient's time zone
    assert email["templates_version"] == load_message_catalogue().effective_at().version
    assert sent["sms"]["to"] == "+13035550100" and sent["sms"]["subject"] is None
    assert "10:00 AM MST" in sent["sms"]["body"]
    assert [m["channel"] for m in list_messages(notifications, "pat_bo", "appointment.booked")] == ["email"]
    assert [m["kind"] for m in list_messages(notifications, "pat_bo")] == ["patient.registered", "appointment.booked"]


def test_a_booking_announced_before_the_patients_contact_details_is_confirmed_once_they_arrive(
        start_notifications, service_config, publish, db):
    notifications = start_notifications()
    booking = booked(VISIT_START)

    with entrypoint_waiter(notifications, "confirm_appointment", callback=after_handling(failing=ContactUnknown)):
        publish(booking)  # nobody knows how to reach pat_ana yet: the confirmation waits
    assert db.messages.count_documents({"kind": "appointment.booked"}) == 0

    publish(registered(sms_opt_in=True))

    sent = wait_for(lambda: db.messages.count_documents({"kind": "appointment.booked"}) == 2
                    and list(db.messages.find({"kind": "appointment.booked"})))
    assert sorted(m["channel"] for m in sent) == ["email", "sms"]
    assert {m["caused_by"] for m in sent} == {booking["event_id"]}
    assert DeadLetterQueue(service_config["AMQP_URI"]).list() == []


def test_the_same_booking_delivered_twice_is_confirmed_once(notifications, publish, db, sms_provider):
    known_contact(notifications, publish, registered(sms_opt_in=True, time_zone=DAYTIME))  # no quiet hours
    booking = booked(VISIT_START)

    with entrypoint_waiter(notifications, "confirm_appointment", callback=after_handling(2)):
        publish(booking)
        publish(booking)

    assert sorted(m["channel"] for m in db.messages.find({"kind": "appointment.booked"})) == ["email", "sms"]
    wait_for(lambda: db.messages.count_documents({"kind": "appointment.booked", "status": "sent"}) == 2)
    assert len([t for t in sms_provider.texts() if "confirmed" in t["body"]]) == 1


def test_an_invoice_is_announced_by_email_with_its_amount_and_the_local_visit_date(notifications, publish):
    known_contact(notifications, publish, registered(sms_opt_in=True))

    with entrypoint_waiter(notifications, "announce_invoice"):
        publish(invoiced())

    [email] = list_messages(notifications, "pat_ana", "invoice.created")  # invoices have no SMS template
    assert (email["channel"], email["subject"]) == ("email", "Your invoice is ready")
    assert "An invoice of $1,000.00 for your visit on November 26, 2026" in email["body"]


def test_each_patient_sees_only_their_own_messages(notifications, publish):
    known_contact(notifications, publish, registered("pat_ana", sms_opt_in=False, first_name="Ana"))
    known_contact(notifications, publish, registered("pat_bo", sms_opt_in=False, first_name="Bo"))

    assert {(m["to"], m["patient_id"]) for m in list_messages(notifications, "pat_bo")} == {
        ("bo@example.com", "pat_bo")}
    assert {m["to"] for m in list_messages(notifications, "pat_ana")} == {"ana@example.com"}
    assert list_messages(notifications, "pat_nobody") == []


def test_changed_contact_details_are_used_even_when_they_overtake_the_registration(notifications, publish, db):
    with entrypoint_waiter(notifications, "update_contact"):
        publish(event("intake", "patient.updated", {"patient_id": "pat_ana", "email": "ana.new@example.com",
                                                     "sms_opt_in": False}))
    known_contact(notifications, publish, registered(sms_opt_in=True))  # older facts, arriving later

    with entrypoint_waiter(notifications, "confirm_appointment"):
        publish(booked(VISIT_START))

    assert [(m["channel"], m["to"]) for m in list_messages(notifications, "pat_ana", "appointment.booked")] == [
        ("email", "ana.new@example.com")]


def test_stop_finds_a_number_by_indexes_on_the_fields_it_looks_in(start_notifications, db):
    db.contacts.create_index("phone", name="by_phone")  # what an earlier version left, on a field never stored
    start_notifications()
    indexes = {name: [field for field, _ in index["key"]] for name, index in db.contacts.index_information().items()}
    assert indexes["by_registered_phone"] == ["registered.phone"]
    assert indexes["by_updated_phone"] == ["updates.phone"]
    assert "by_phone" not in indexes
