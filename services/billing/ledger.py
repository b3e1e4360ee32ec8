"""The double-entry ledger: journal entries whose lines sum to zero, one per cause, never changed.

Plain Python, no Nameko. A line's amount is a debit when positive and a credit when negative, in integer cents.
Each line names the patient and, where it has one, the hold or invoice it belongs to, so that a patient's balance
and an invoice's amount due are sums over the ledger rather than numbers kept beside it.

Accounts: ``cash_at_stripe`` (what Stripe holds for us), ``deposits_held`` (deposits paid for holds not yet
booked), ``receivable`` (what patients owe on invoices; negative: what we owe them), ``deferred_revenue`` (booked,
not yet given), ``revenue:<code>`` (by visit type and travel zone), ``discounts``, ``fee_revenue``, ``refunds``
(money returned after a visit was given), ``processor_fees`` (Stripe's fees), ``disputed_funds``,
``package_credits`` (packages paid for, visits not yet given), ``revenue:package_expired`` (visits of a package
left unused when it expired).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from chassis.ids import derived_id


class UnbalancedEntry(ValueError):
    pass


def line(account: str, amount_cents: int, patient_id: str, **about: str | None) -> dict[str, Any]:
    return {"account": account, "amount_cents": int(amount_cents), "patient_id": patient_id,
            **{key: value for key, value in about.items() if value is not None}}


def entry(cause: str, kind: str, currency: str, posted_at: datetime, lines: Iterable[dict[str, Any]],
          **about: Any) -> dict[str, Any]:
    """One journal entry, its id derived from its cause (a second write of the same cause is refused by the
    store's unique ``_id``); lines of zero are left out; refused unless the lines sum to zero."""
    kept = [item for item in lines if item["amount_cents"] != 0]
    total = sum(item["amount_cents"] for item in kept)
    if total != 0:
        raise UnbalancedEntry(f"entry {cause} is off by {total} cents")
    return {"_id": entry_id(cause), "cause": cause, "kind": kind, "currency": currency,
            "posted_at": posted_at, "lines": kept, **about}


def with_processor_fee(lines: list[dict[str, Any]], fee_cents: int, patient_id: str) -> list[dict[str, Any]]:
    return [*lines, line("processor_fees", fee_cents, patient_id), line("cash_at_stripe", -fee_cents, patient_id)]


def deposit_received(payment_intent_id: str, hold_id: str, patient_id: str, amount_cents: int, fee_cents: int,
                     currency: str, posted_at: datetime, charge_id: str | None = None) -> dict[str, Any]:
    lines = [line("cash_at_stripe", amount_cents, patient_id, hold_id=hold_id),
             line("deposits_held", -amount_cents, patient_id, hold_id=hold_id)]
    return entry(f"payment:{payment_intent_id}", "deposit", currency, posted_at,
                 with_processor_fee(lines, fee_cents, patient_id), payment_intent_id=payment_intent_id,
                 charge_id=charge_id, fee_cents=fee_cents, hold_id=hold_id, patient_id=patient_id)


def package_sold(payment_intent_id: str, purchase_id: str, patient_id: str, amount_cents: int, fee_cents: int,
                 currency: str, posted_at: datetime, charge_id: str | None = None) -> dict[str, Any]:
    """A package paid in full: owed to the patient as visits until they are given (``package_credits``)."""
    lines = [line("cash_at_stripe", amount_cents, patient_id, purchase_id=purchase_id),
             line("package_credits", -amount_cents, patient_id, purchase_id=purchase_id)]
    return entry(f"payment:{payment_intent_id}", "package", currency, posted_at,
                 with_processor_fee(lines, fee_cents, patient_id), payment_intent_id=payment_intent_id,
                 charge_id=charge_id, fee_cents=fee_cents, purchase_id=purchase_id, patient_id=patient_id)


def package_credit_applied(invoice_id: str, purchase_id: str, patient_id: str, value_cents: int, currency: str,
                           posted_at: datetime) -> dict[str, Any]:
    """One visit of a package pays for an invoice: the slot's value moves from what is owed to the patient as
    visits (``package_credits``) to the invoice's receivable. One per invoice (the claim is keyed by it)."""
    lines = [line("package_credits", value_cents, patient_id, purchase_id=purchase_id),
             line("receivable", -value_cents, patient_id, invoice_id=invoice_id)]
    return entry(f"package-credit:{invoice_id}", "package_credit", currency, posted_at, lines,
                 invoice_id=invoice_id, purchase_id=purchase_id, patient_id=patient_id)


def package_credit_returned(invoice_id: str, purchase_id: str, patient_id: str, value_cents: int, currency: str,
                            posted_at: datetime) -> dict[str, Any]:
    """A visit paid by a package credit is called off: the credit goes back to the package (the reverse of
    ``package_credit_applied``)."""
    lines = [line("receivable", value_cents, patient_id, invoice_id=invoice_id),
             line("package_credits", -value_cents, patient_id, purchase_id=purchase_id)]
    return entry(f"package-credit-returned:{invoice_id}", "package_credit_returned", currency, posted_at, lines,
                 invoice_id=invoice_id, purchase_id=purchase_id, patient_id=patient_id)


def package_expired(purchase_id: str, slot: int, patient_id: str, value_cents: int, currency: str,
                    posted_at: datetime) -> dict[str, Any]:
    """A visit of a package left unused when the package expired: what was owed as a visit is earned. One per
    slot (a credit given back after the expiry closes its slot later, with an entry of its own)."""
    lines = [line("package_credits", value_cents, patient_id, purchase_id=purchase_id),
             line("revenue:package_expired", -value_cents, patient_id, purchase_id=purchase_id)]
    return entry(f"package-expired:{purchase_id}:{slot}", "package_expired", currency, posted_at, lines,
                 purchase_id=purchase_id, patient_id=patient_id, slot=slot)


def package_retained(purchase_id: str, patient_id: str, retained_cents: int, reason: str, currency: str,
                     posted_at: datetime) -> dict[str, Any]:
    """The part of a closed package's unused visits kept as a fee (a declined patient's retention); the rest is
    refunded from ``package_credits``."""
    lines = [line("package_credits", retained_cents, patient_id, purchase_id=purchase_id),
             line("fee_revenue", -retained_cents, patient_id, purchase_id=purchase_id)]
    return entry(f"package-retained:{purchase_id}", "package_retained", currency, posted_at, lines,
                 purchase_id=purchase_id, patient_id=patient_id, reason=reason)


def invoice_opened(invoice_id: str, patient_id: str, total_cents: int, deposit_cents: int, hold_id: str | None,
                   currency: str, posted_at: datetime) -> dict[str, Any]:
    """The booked visit is owed and not yet earned; a deposit paid for its hold counts towards it."""
    lines = [line("receivable", total_cents, patient_id, invoice_id=invoice_id),
             line("deferred_revenue", -total_cents, patient_id, invoice_id=invoice_id),
             line("deposits_held", deposit_cents, patient_id, hold_id=hold_id),
             line("receivable", -deposit_cents, patient_id, invoice_id=invoice_id)]
    return entry(f"invoice:{invoice_id}", "invoice", currency, posted_at, lines, invoice_id=invoice_id,
                 patient_id=patient_id)


def visit_given(invoice_id: str, patient_id: str, quote_lines: list[Mapping[str, Any]], discount_cents: int,
                currency: str, posted_at: datetime) -> dict[str, Any]:
    """Revenue is earned when the visit is given: by line (visit type, travel zone), less the discount."""
    total = sum(item["amount_cents"] for item in quote_lines) - discount_cents
    lines = [line("deferred_revenue", total, patient_id, invoice_id=invoice_id),
             line("discounts", discount_cents, patient_id, invoice_id=invoice_id)]
    lines += [line(f"revenue:{item['code']}", -item["amount_cents"], patient_id, invoice_id=invoice_id)
              for item in quote_lines]
    return entry(f"visit:{invoice_id}", "visit", currency, posted_at, lines, invoice_id=invoice_id,
                 patient_id=patient_id)


def balance_received(payment_intent_id: str, invoice_id: str, patient_id: str, amount_cents: int, fee_cents: int,
                     currency: str, posted_at: datetime, charge_id: str | None = None) -> dict[str, Any]:
    lines = [line("cash_at_stripe", amount_cents, patient_id, invoice_id=invoice_id),
             line("receivable", -amount_cents, patient_id, invoice_id=invoice_id)]
    return entry(f"payment:{payment_intent_id}", "balance", currency, posted_at,
                 with_processor_fee(lines, fee_cents, patient_id), payment_intent_id=payment_intent_id,
                 charge_id=charge_id, fee_cents=fee_cents, invoice_id=invoice_id, patient_id=patient_id)


def visit_called_off(invoice_id: str, patient_id: str, total_cents: int, fee_cents: int, reason: str,
                     currency: str, posted_at: datetime) -> dict[str, Any]:
    """A booked visit that will not be given: the invoice is reversed and the fee, if any, is earned; what is
    left of what the patient paid is then owed back to them (a credit on the receivable) until refunded."""
    lines = [line("deferred_revenue", total_cents, patient_id, invoice_id=invoice_id),
             line("receivable", -total_cents, patient_id, invoice_id=invoice_id),
             line("receivable", fee_cents, patient_id, invoice_id=invoice_id),
             line("fee_revenue", -fee_cents, patient_id, invoice_id=invoice_id)]
    return entry(f"called-off:{invoice_id}", "called_off", currency, posted_at, lines, invoice_id=invoice_id,
                 patient_id=patient_id, reason=reason)


#: Where a refund is taken from: a deposit not yet applied to an invoice, a credit on an invoice, revenue
#: already earned (a refund after the visit), a fee kept and then waived, or a package's unused visits.
REFUND_SOURCES = {"hold": "deposits_held", "invoice": "receivable", "revenue": "refunds", "fee": "fee_revenue",
                  "package": "package_credits"}


def refund_paid(refund_key: str, refund_id: str, source: str, patient_id: str, amount_cents: int, currency: str,
                posted_at: datetime, invoice_id: str | None = None, hold_id: str | None = None,
                purchase_id: str | None = None) -> dict[str, Any]:
    about = {"invoice_id": invoice_id, "hold_id": hold_id, "purchase_id": purchase_id}
    lines = [line(REFUND_SOURCES[source], amount_cents, patient_id, **about),
             line("cash_at_stripe", -amount_cents, patient_id, **about)]
    return entry(f"refund:{refund_id}", "refund", currency, posted_at, lines, refund_id=refund_id,
                 refund_key=refund_key, patient_id=patient_id, **about)


def dispute_opened(dispute_id: str, patient_id: str, amount_cents: int, currency: str,
                   posted_at: datetime) -> dict[str, Any]:
    lines = [line("disputed_funds", amount_cents, patient_id), line("cash_at_stripe", -amount_cents, patient_id)]
    return entry(f"dispute:{dispute_id}", "dispute", currency, posted_at, lines, dispute_id=dispute_id,
                 patient_id=patient_id)


def entry_id(cause: str) -> str:
    """The id of the entry of ``cause`` (whether it was written yet can be asked by id)."""
    return derived_id("je", cause)


def total(entries: Iterable[Mapping[str, Any]], account: str | None = None, **about: str) -> int:
    """The sum of the lines of ``entries`` on ``account`` (any account when None) matching ``about``."""
    return sum(item["amount_cents"] for journal_entry in entries for item in journal_entry["lines"]
               if (account is None or item["account"] == account)
               and all(item.get(key) == value for key, value in about.items()))


def problems(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """What is wrong with a ledger: an entry whose lines do not sum to zero, or a whole that does not."""
    found, whole = [], 0
    for journal_entry in entries:
        amount = sum(item["amount_cents"] for item in journal_entry["lines"])
        whole += amount
        if amount:
            found.append(f"entry {journal_entry['_id']} ({journal_entry.get('cause')}) is off by {amount} cents")
    if whole:
        found.append(f"the ledger is off by {whole} cents")
    return found
