"""Helpers of billing's money tests: call an RPC method in the container, publish an event as its producer
does, quote a hold, list a patient's charges at the stand-in, book a visit from a paid hold."""

import json
from datetime import UTC, datetime, timedelta

from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook

from chassis.clock import isoformat, utcnow
from chassis.ids import new_id
from chassis.testing import wait_for

START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)


def call(container, method, *args, **kwargs):
    with entrypoint_hook(container, method) as entrypoint:
        return entrypoint(*args, **kwargs)


def envelope(source: str, kind: str, payload: dict) -> dict:
    """An event as docs/events.md fixes it (built by hand: some producers' schemas land with their issues)."""
    return {"event_id": new_id("evt"), "type": kind, "version": 1, "occurred_at": isoformat(utcnow()),
            "correlation_id": "corr-test", "producer": source,
            "payload": json.loads(json.dumps(payload, default=lambda value: isoformat(value)))}


def publish(config, source, kind, payload):
    event = envelope(source, kind, payload)
    event_dispatcher(config)(source, kind, event)
    return event


def held(billing, hold_id, patient_id, visit_type="iv-mood", expires_in=timedelta(minutes=10)):
    return call(billing, "quote", {"patient_id": patient_id, "visit_type": visit_type, "hold_id": hold_id,
                                   "start_at": START.isoformat(),
                                   "expires_at": (datetime.now(UTC) + expires_in).isoformat()})


def charges(stripe_client, db, patient_id) -> list:
    customer = db.customers.find_one({"_id": patient_id})
    return stripe_client.v1.charges.list(params={"customer": customer["stripe_customer_id"], "limit": 100}).data


def booked_from_hold(billing, config, db, patient, hold, appointment, visit_type="iv-mood"):
    """The hold's quote, its deposit paid, then scheduling's ``appointment.booked`` naming the hold."""
    quote = held(billing, hold, patient, visit_type=visit_type)
    call(billing, "pay_deposit", hold, "pm_card_visa")
    publish(config, "scheduling", "appointment.booked", {
        "appointment_id": appointment, "patient_id": patient, "nurse_id": "nur_kim", "visit_type": visit_type,
        "start_at": START, "end_at": START + timedelta(hours=2), "time_zone": "America/Denver", "hold_id": hold,
        "quote_id": quote["quote_id"]})
    return quote, wait_for(lambda: db.invoices.find_one({"appointment_id": appointment}))
