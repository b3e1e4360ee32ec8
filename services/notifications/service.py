"""Notifications: messages to patients from events. A thin Nameko shell around ``domain``."""

from __future__ import annotations

from typing import Any

from chassis.clock import utcnow
from chassis.events import Event
from chassis.ids import derived_id
from chassis.pagination import fetch_page
from chassis.rpc import rpc
from chassis.service import RpcServiceBase
from chassis.store import Store
from chassis.subscriber import subscribe
from services.notifications.dependencies import create_indexes, load_message_catalogue
from services.notifications.domain import local_date, local_time, money, render
from services.notifications.exceptions import ContactUnknown
from services.notifications.schemas import AppointmentBooked, InvoiceCreated, MessageSchema, PatientRegistered

MESSAGE_CATALOGUE = load_message_catalogue()


class NotificationsService(RpcServiceBase):
    name = "notifications"

    store = Store("notifications", indexes=create_indexes)

    @subscribe("intake", "patient.registered", PatientRegistered)
    def remember_contact(self, event: Event) -> None:
        contact = {**event.payload, "_id": event.payload["patient_id"], "updated_by": event.event_id}
        self.store.db.contacts.replace_one({"_id": contact["_id"]}, contact, upsert=True)

    @subscribe("scheduling", "appointment.booked", AppointmentBooked)
    def confirm_appointment(self, event: Event) -> None:
        booked = event.payload
        self._record(event, booked["patient_id"], {"local_time": local_time(booked["start_at"], booked["time_zone"])})

    @subscribe("billing", "invoice.created", InvoiceCreated)
    def announce_invoice(self, event: Event) -> None:
        invoice = event.payload
        contact = self._contact(invoice["patient_id"])
        self._record(event, invoice["patient_id"], {
            "amount": money(invoice["total_cents"], invoice["currency"]),
            "local_date": local_date(invoice["visit_start_at"], contact["time_zone"]),
        }, contact)

    @rpc
    def list_messages(self, patient_id: str, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """A page of the messages sent to a patient, oldest first."""
        page = fetch_page(self.store.db.messages, {"patient_id": str(patient_id)}, "created_at",
                          cursor=cursor, limit=limit)
        return {"items": MessageSchema(many=True).dump(page.items), "next_cursor": page.next_cursor}

    def _contact(self, patient_id: str) -> dict[str, Any]:
        contact = self.store.db.contacts.find_one({"_id": patient_id})
        if contact is None:
            raise ContactUnknown(f"no contact details yet for {patient_id}")
        return contact

    def _record(self, event: Event, patient_id: str, values: dict[str, str],
                contact: dict[str, Any] | None = None) -> None:
        """Record each message the event causes, once: ids derive from the event and the channel."""
        catalogue = MESSAGE_CATALOGUE.effective_at()
        for message in render(catalogue, event.type, contact or self._contact(patient_id), values):
            self.store.insert_once("messages", {
                "_id": derived_id("msg", event.event_id, message.channel), "patient_id": patient_id,
                "kind": event.type, "channel": message.channel, "to": message.to, "subject": message.subject,
                "body": message.body, "status": "recorded", "created_at": utcnow(),
                "templates_version": catalogue.version, "caused_by": event.event_id,
            })
