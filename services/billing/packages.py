"""Packages of visits (e.g. the 6-infusion induction): what each visit of a package is worth, which visits a
package pays for, and how an invoice is priced when a package credit pays for its visit.

Plain Python, no Nameko. A package of N visits paid P cents has N slots; slot i is worth ``P // N``, the first
``P % N`` slots one cent more, so the slots add up to exactly what was paid whatever order they are used and given
back in. A visit of the package's visit type uses one free slot (the store records the invoice in the slot, a
conditional write); a visit called off gives its slot back (see ``ledger.package_credit_returned``).

A package is closed slot by slot, each free slot marked with why no visit will come of it: ``EXPIRED`` (its visits
left unused when it expired are earned) or ``DECLINED`` (a clinician found the patient ineligible: what the unused
visits are worth is refunded, less the fee policy's retention percentage). The marks are conditional writes like a
claim, so a slot is either used by one visit or closed, never both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from chassis.clock import as_utc


def slot_values(amount_cents: int, visits: int) -> list[int]:
    """What each of the package's visits is worth, in cents: together exactly ``amount_cents``."""
    if visits < 1 or amount_cents < 0:
        raise ValueError("a package has at least one visit and a price of at least zero")
    share, remainder = divmod(amount_cents, visits)
    return [share + (1 if slot < remainder else 0) for slot in range(visits)]


def bought(purchase_id: str, patient_id: str, package: str, terms: Mapping[str, Any], amount_cents: int,
           currency: str, catalogue_version: str, paid_at: datetime, expires_at: datetime,
           payment_intent_id: str | None) -> dict[str, Any]:
    """The patient's package as billing keeps it: one free slot (``None``) per visit, and each slot's value."""
    return {"_id": purchase_id, "patient_id": patient_id, "package": package, "visit_type": terms["visit_type"],
            "visits": terms["visits"], "visits_used": 0, "amount_cents": amount_cents, "currency": currency,
            "catalogue_version": catalogue_version, "paid_at": paid_at, "expires_at": expires_at,
            "slots": [None] * terms["visits"], "slot_values": slot_values(amount_cents, terms["visits"]),
            "payment_intent_id": payment_intent_id}


def covers(package: Mapping[str, Any], visit_type: str, currency: str, visit_start_at: datetime) -> bool:
    """A package pays for a visit of its visit type, in its currency, starting before it expires."""
    return (package.get("visit_type") == visit_type and package.get("currency", currency) == currency
            and as_utc(visit_start_at) <= as_utc(package["expires_at"]))


#: What a closed slot holds instead of an invoice id.
EXPIRED, DECLINED = "expired", "declined"


def free_slots(package: Mapping[str, Any]) -> list[int]:
    return [slot for slot, used_by in enumerate(package.get("slots") or []) if used_by is None]


def slots_marked(package: Mapping[str, Any], mark: str) -> list[tuple[int, int]]:
    """Each slot closed with ``mark``, with its value."""
    return [(slot, package["slot_values"][slot]) for slot, used_by in enumerate(package.get("slots") or [])
            if used_by == mark]


def value_marked(package: Mapping[str, Any], mark: str) -> int:
    """What the slots closed with ``mark`` are worth together."""
    return sum(value for _, value in slots_marked(package, mark))


def status(package: Mapping[str, Any], now: datetime) -> str:
    """``active`` while a visit can still be drawn, else why not: ``used_up``, ``expired`` or ``declined``."""
    slots = package.get("slots") or []
    if DECLINED in slots:
        return "declined"
    if as_utc(now) > as_utc(package["expires_at"]):
        return "expired"
    return "active" if None in slots else "used_up"


def claim_order(packages: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The package to draw on first: the one expiring soonest (then the oldest purchase)."""
    return sorted(packages, key=lambda package: (as_utc(package["expires_at"]), package["_id"]))


def credit(invoice_id: str, package: Mapping[str, Any], slot: int, claimed_at: datetime) -> dict[str, Any]:
    """The claim of one slot by one invoice (kept under the invoice's id: one claim per invoice)."""
    return {"_id": invoice_id, "purchase_id": package["_id"], "package": package["package"], "slot": slot,
            "value_cents": package["slot_values"][slot], "patient_id": package["patient_id"], "status": "applied",
            "claimed_at": claimed_at}


def priced_with_credit(invoice: Mapping[str, Any], visit_type: str, claim: Mapping[str, Any]) -> dict[str, Any]:
    """The invoice of a visit a package credit pays for: the visit is priced at the package's price per visit
    (the slot's value); the difference from the visit's own price is the package's discount, which replaces any
    other discount on the visit. Other lines (travel) stay due as quoted."""
    visit_cents = sum(item["amount_cents"] for item in invoice["line_items"] if item["code"] == visit_type)
    discount = visit_cents - claim["value_cents"]
    total = sum(item["amount_cents"] for item in invoice["line_items"]) - discount
    return {**invoice, "discount_cents": discount, "total_cents": total,
            "amount_due_cents": total - claim["value_cents"],
            "package_credit": {"purchase_id": claim["purchase_id"], "package": claim["package"],
                               "slot": claim["slot"], "value_cents": claim["value_cents"], "status": "applied"}}


def summary(package: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The package as the patient sees it (``visits_left``: free slots it can still draw on)."""
    state = status(package, now)
    return {"purchase_id": package["_id"], "package": package["package"], "visit_type": package["visit_type"],
            "visits": package["visits"], "visits_used": package["visits_used"],
            "visits_left": len(free_slots(package)) if state == "active" else 0,
            "amount_cents": package["amount_cents"], "currency": package["currency"],
            "paid_at": as_utc(package["paid_at"]).isoformat(), "expires_at": as_utc(package["expires_at"]).isoformat(),
            "status": state}
