"""Billing: invoices priced from the catalogue. A thin Nameko shell around ``domain``."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import services.billing.events  # noqa: F401  (registers the event schemas)
from chassis.clock import utcnow
from chassis.events import Event
from chassis.ids import derived_id
from chassis.pagination import fetch_page
from chassis.rpc import rpc
from chassis.service import RpcServiceBase
from chassis.store import Store
from chassis.subscriber import subscribe
from services.billing.dependencies import create_indexes, load_price_catalogue
from services.billing.domain import quote_visit
from services.billing.exceptions import InvoiceNotFound
from services.billing.schemas import AppointmentBooked, InvoiceSchema

log = logging.getLogger(__name__)

PRICE_CATALOGUE = load_price_catalogue()


class BillingService(RpcServiceBase):
    name = "billing"

    store = Store("billing", indexes=create_indexes, outbox=("invoices",))

    @subscribe("scheduling", "appointment.booked", AppointmentBooked)
    def invoice_booked_appointment(self, event: Event) -> None:
        """One invoice per appointment, priced from the catalogue in force when it was booked."""
        booked = event.payload
        quote = quote_visit(PRICE_CATALOGUE.effective_at(event.occurred_at), booked["visit_type"])
        invoice_id = derived_id("inv", booked["appointment_id"])
        invoice = {
            "_id": invoice_id, "appointment_id": booked["appointment_id"], "patient_id": booked["patient_id"],
            "status": "open", "currency": quote.currency,
            "line_items": [{**asdict(item), "amount_cents": item.amount_cents} for item in quote.line_items],
            "total_cents": quote.total_cents, "amount_due_cents": quote.total_cents,
            "catalogue_version": quote.catalogue_version, "visit_start_at": booked["start_at"],
            "created_at": utcnow(), "caused_by": event.event_id,
        }
        created = self.store.event("invoice.created", {
            "invoice_id": invoice_id, "appointment_id": booked["appointment_id"],
            "patient_id": booked["patient_id"], "currency": quote.currency, "total_cents": quote.total_cents,
            "visit_start_at": booked["start_at"],
        })
        if self.store.insert_once("invoices", invoice, [created]):
            log.info("invoice %s created for appointment %s", invoice_id, booked["appointment_id"])

    @rpc
    def list_invoices(self, appointment_id: str | None = None, patient_id: str | None = None,
                      cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """A page of invoices, oldest first, filtered by appointment and/or patient."""
        query: dict[str, Any] = {}
        if appointment_id is not None:
            query["appointment_id"] = str(appointment_id)
        if patient_id is not None:
            query["patient_id"] = str(patient_id)
        page = fetch_page(self.store.db.invoices, query, "created_at", cursor=cursor, limit=limit,
                          projection={"outbox": 0})
        return {"items": InvoiceSchema(many=True).dump(page.items), "next_cursor": page.next_cursor}

    @rpc
    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.store.db.invoices.find_one({"_id": str(invoice_id)}, {"outbox": 0})
        if invoice is None:
            raise InvoiceNotFound(f"no invoice {invoice_id}", invoice_id=invoice_id)
        return InvoiceSchema().dump(invoice)
