"""Billing rules as plain functions (no Nameko): the invoice of a booked visit.

The rules live in modules beside this one: ``catalogue`` (prices, the quote and the deposit rule) and ``fees``
(the fee and refund policy).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.billing.catalogue import Quote


def invoice_from_quote(invoice_id: str, appointment_id: str, patient_id: str, visit_start_at: datetime,
                       quote: dict[str, Any]) -> dict[str, Any]:
    """The invoice of a booked visit at the price it was quoted (a stored quote, as ``Quote.as_dict`` gives)."""
    return {
        "_id": invoice_id, "appointment_id": appointment_id, "patient_id": patient_id, "status": "open",
        "currency": quote["currency"], "line_items": quote["lines"], "discount_cents": quote["discount_cents"],
        "total_cents": quote["total_cents"], "amount_due_cents": quote["total_cents"],
        "deposit_cents": quote["deposit_cents"], "quote_id": quote.get("quote_id"),
        "catalogue_version": quote["catalogue_version"], "visit_start_at": visit_start_at,
    }


def stored_quote(quote_id: str, quote: Quote, **about: Any) -> dict[str, Any]:
    """What billing keeps of a quote: the answer itself, its id, and what it was given for (hold, patient)."""
    return {"_id": quote_id, "quote_id": quote_id, **quote.as_dict(), **about}
