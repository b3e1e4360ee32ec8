"""Billing on the real broker and store: every booked appointment is invoiced exactly once.

Scheduling's ``appointment.booked`` events are published for real on ``scheduling.events``; billing
prices the visit from its catalogue, stores the invoice and announces it with ``invoice.created``. Events
arrive at least once, so the same booking delivered again must not produce a second invoice.
"""

from datetime import UTC, datetime, timedelta

import pytest
from kombu import Connection, Queue
from marshmallow import EXCLUDE
from nameko.events import get_event_exchange
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

import services.scheduling.events  # noqa: F401  (registers the appointment.booked schema for make_event)
from chassis.dlq import DeadLetterQueue
from chassis.events import make_event
from chassis.ids import derived_id
from chassis.testing import wait_for
from services.billing.exceptions import InvoiceNotFound
from services.notifications.schemas import InvoiceCreated as NotificationsReadsInvoice

VISIT_START = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)


def a_booking(appointment_id: str = "apt_1", patient_id: str = "pat_ana", visit_type: str = "iv-mood") -> dict:
    """An ``appointment.booked`` envelope exactly as scheduling publishes it."""
    return make_event("scheduling", "appointment.booked", {
        "appointment_id": appointment_id, "patient_id": patient_id, "nurse_id": "nur_kim",
        "visit_type": visit_type, "start_at": VISIT_START, "end_at": VISIT_START + timedelta(hours=2),
        "time_zone": "America/Denver",
    }, correlation_id="corr-test")


@pytest.fixture
def config(service_config):
    """Invoicing takes no payment: billing here runs without Stripe (conftest's ``billing`` starts it)."""
    return service_config


@pytest.fixture
def publish(service_config):
    dispatch = event_dispatcher(service_config)
    return lambda event: dispatch("scheduling", event["type"], event)


@pytest.fixture
def invoices(mongo_client, database_prefix):
    return mongo_client[database_prefix + "billing"].invoices


def call(container, method, *args, **kwargs):
    with entrypoint_hook(container, method) as entrypoint:
        return entrypoint(*args, **kwargs)


def after_handling(count: int):
    """An entrypoint_waiter callback that lets go once the handler has finished ``count`` deliveries."""
    handled = []

    def callback(worker_ctx, result, exc_info):
        handled.append(exc_info)
        return len(handled) == count

    return callback


def test_a_booked_appointment_is_invoiced_at_the_catalogue_price(billing, publish, invoices):
    booking = a_booking("apt_1", visit_type="iv-mood")
    publish(booking)

    invoice = wait_for(lambda: invoices.find_one({"appointment_id": "apt_1"}))

    assert invoice["_id"] == derived_id("inv", "apt_1")
    assert (invoice["patient_id"], invoice["status"], invoice["currency"]) == ("pat_ana", "open", "usd")
    assert invoice["line_items"] == [{"code": "iv-mood", "description": "Home IV visit, mood protocol",
                                      "quantity": 1, "unit_amount_cents": 60000, "amount_cents": 60000}]
    assert (invoice["total_cents"], invoice["amount_due_cents"]) == (60000, 60000)
    assert invoice["catalogue_version"] == "2026-11-01"
    assert invoice["visit_start_at"] == VISIT_START
    assert invoice["caused_by"] == booking["event_id"]


@pytest.mark.parametrize("redelivery", ["the same event again", "a second event for the same appointment"])
def test_a_booking_delivered_twice_is_invoiced_once(billing, publish, invoices, redelivery):
    first = a_booking("apt_1")
    second = first if redelivery == "the same event again" else a_booking("apt_1")

    with entrypoint_waiter(billing, "invoice_booked_appointment", callback=after_handling(2)):
        publish(first)
        publish(second)

    assert invoices.count_documents({}) == 1
    assert invoices.find_one()["_id"] == derived_id("inv", "apt_1")


def test_invoices_are_listed_by_appointment_and_by_patient(billing, publish, invoices):
    publish(a_booking("apt_1", "pat_ana", "iv-mood"))
    publish(a_booking("apt_2", "pat_ana", "consult"))
    publish(a_booking("apt_3", "pat_bo", "iv-pain"))
    wait_for(lambda: invoices.count_documents({}) == 3)

    by_appointment = call(billing, "list_invoices", appointment_id="apt_3")["items"]
    by_patient = call(billing, "list_invoices", patient_id="pat_ana")["items"]

    assert [(i["appointment_id"], i["patient_id"], i["total_cents"]) for i in by_appointment] == [
        ("apt_3", "pat_bo", 100000)]
    assert sorted((i["appointment_id"], i["total_cents"]) for i in by_patient) == [("apt_1", 60000), ("apt_2", 0)]
    assert call(billing, "list_invoices", appointment_id="apt_404") == {"items": [], "next_cursor": None}
    assert call(billing, "list_invoices", patient_id={"$ne": None})["items"] == []  # an operator matches nothing
    assert call(billing, "get_invoice", by_appointment[0]["id"]) == {**by_appointment[0], "payments": [], "refunds": []}


def test_invoices_are_listed_page_by_page_without_repeats(billing, publish, invoices):
    for n in (1, 2, 3):
        publish(a_booking(f"apt_{n}", "pat_ana"))
    wait_for(lambda: invoices.count_documents({}) == 3)

    first = call(billing, "list_invoices", patient_id="pat_ana", limit=2)
    second = call(billing, "list_invoices", patient_id="pat_ana", limit=2, cursor=first["next_cursor"])

    assert len(first["items"]) == 2 and first["next_cursor"]
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    assert sorted(i["appointment_id"] for i in first["items"] + second["items"]) == ["apt_1", "apt_2", "apt_3"]


def test_an_unknown_invoice_is_not_found(billing):
    with pytest.raises(InvoiceNotFound) as missing:
        call(billing, "get_invoice", "inv_nobody")
    assert (missing.value.status, missing.value.code) == (404, "invoice_not_found")


def test_a_new_invoice_is_announced_with_what_notifications_needs(billing, publish, service_config):
    listener = Queue("test.billing-listener", exchange=get_event_exchange("billing", service_config),
                     routing_key="invoice.created", durable=False)
    with Connection(service_config["AMQP_URI"]) as connection:
        bound = listener(connection.default_channel)
        bound.declare()

        booking = a_booking("apt_1", "pat_ana", "iv-pain")
        publish(booking)
        event = wait_for(lambda: bound.get(no_ack=True, accept=["json"])).decode()

    assert (event["type"], event["producer"]) == ("invoice.created", "billing")
    assert event["correlation_id"] == "corr-test"  # the booking's correlation id follows the invoice
    payload = event["payload"]
    assert payload["invoice_id"] == derived_id("inv", "apt_1")
    assert (payload["appointment_id"], payload["patient_id"]) == ("apt_1", "pat_ana")
    assert (payload["currency"], payload["total_cents"]) == ("usd", 100000)
    assert datetime.fromisoformat(payload["visit_start_at"]) == VISIT_START
    assert NotificationsReadsInvoice(unknown=EXCLUDE).validate(payload) == {}


def test_a_booking_of_a_visit_type_without_a_price_is_dead_lettered_not_invoiced(billing, publish, invoices,
                                                                               service_config):
    booking = a_booking("apt_1", visit_type="iv-party")
    publish(booking)

    letters = wait_for(lambda: DeadLetterQueue(service_config["AMQP_URI"]).list())

    assert [(d.event_id, d.service, d.handler) for d in letters] == [
        (booking["event_id"], "billing", "invoice_booked_appointment")]
    assert "UnknownPriceItem" in letters[0].error
    assert letters[0].attempts == 1 + len(service_config["EVENT_RETRY_DELAYS"])
    assert invoices.count_documents({}) == 0
