"""Billing: invoices priced from the catalogue. A thin Nameko shell around ``domain``."""

from __future__ import annotations

import logging
from typing import Any

import services.billing.events  # noqa: F401  (registers the event schemas)
from chassis.clock import utcnow
from chassis.events import Event
from chassis.ids import derived_id, new_id
from chassis.pagination import fetch_page
from chassis.rpc import rpc
from chassis.service import RpcServiceBase, validated
from chassis.store import Store
from chassis.subscriber import subscribe
from services.billing.catalogue import quote_visit
from services.billing.dependencies import create_indexes, load_fee_policy, load_price_catalogue
from services.billing.domain import invoice_from_quote, stored_quote
from services.billing.exceptions import InvoiceNotFound
from services.billing.fees import policy_in_words
from services.billing.schemas import AppointmentBooked, InvoiceSchema, QuoteRequestSchema, QuoteSchema

log = logging.getLogger(__name__)

PRICE_CATALOGUE = load_price_catalogue()
FEE_POLICY = load_fee_policy()


class BillingService(RpcServiceBase):
    name = "billing"

    store = Store("billing", indexes=create_indexes, outbox=("invoices",))

    @rpc
    def quote(self, request: dict[str, Any]) -> dict[str, Any]:
        """Itemised price, deposit due now, balance after the visit and the cancellation policy. With a
        ``hold_id`` the quote is kept as the hold's (a repeated request for the hold returns the kept one)."""
        asked = validated(QuoteRequestSchema(), request)
        now = utcnow()
        policy = FEE_POLICY.effective_at(now)
        quote = quote_visit(PRICE_CATALOGUE.effective_at(now), asked["visit_type"],
                            postal_code=asked["postal_code"], discount_codes=asked["discount_codes"],
                            cancellation_policy=policy_in_words(policy), fee_policy_version=policy.version)
        if asked["hold_id"] is None:
            return QuoteSchema().dump(stored_quote(new_id("quo"), quote, patient_id=asked["patient_id"],
                                                   created_at=now))
        quote_id = derived_id("quo", asked["hold_id"])
        kept = stored_quote(quote_id, quote, hold_id=asked["hold_id"], patient_id=asked["patient_id"],
                            start_at=asked["start_at"], expires_at=asked["expires_at"], created_at=now)
        if not self.store.insert_once("quotes", kept):
            kept = self.store.db.quotes.find_one({"_id": quote_id}, {"outbox": 0})
        return QuoteSchema().dump(kept)

    @subscribe("scheduling", "appointment.booked", AppointmentBooked)
    def invoice_booked_appointment(self, event: Event) -> None:
        """One invoice per appointment, at the price of the hold's quote when it had one, else priced from the
        catalogue in force when it was booked."""
        booked = event.payload
        quote = self._quote_of(booked)
        if quote is None:
            quote = quote_visit(PRICE_CATALOGUE.effective_at(event.occurred_at), booked["visit_type"]).as_dict()
        invoice_id = derived_id("inv", booked["appointment_id"])
        invoice = {**invoice_from_quote(invoice_id, booked["appointment_id"], booked["patient_id"],
                                        booked["start_at"], quote),
                   "created_at": utcnow(), "caused_by": event.event_id}
        created = self.store.event("invoice.created", {
            "invoice_id": invoice_id, "appointment_id": booked["appointment_id"],
            "patient_id": booked["patient_id"], "currency": invoice["currency"],
            "total_cents": invoice["total_cents"], "visit_start_at": booked["start_at"],
        })
        if self.store.insert_once("invoices", invoice, [created]):
            log.info("invoice %s created for appointment %s", invoice_id, booked["appointment_id"])

    def _quote_of(self, booked: dict[str, Any]) -> dict[str, Any] | None:
        if booked.get("quote_id"):
            return self.store.db.quotes.find_one({"_id": booked["quote_id"]})
        if booked.get("hold_id"):
            return self.store.db.quotes.find_one({"hold_id": booked["hold_id"]})
        return None

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
