"""Finance exports and reconciliation, as plain functions over journal entries (no Nameko, no store).

Rows are produced one at a time from entries read in ``posted_at`` order, so an export of any size is streamed
with flat memory: the daily revenue summary keeps only the day being summed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from chassis.clock import as_utc, isoformat

COLUMNS: dict[str, tuple[str, ...]] = {
    "payments": ("posted_at", "payment_intent_id", "charge_id", "kind", "patient_id", "hold_id", "invoice_id",
                 "amount_cents", "fee_cents", "currency", "purchase_id"),
    "refunds": ("posted_at", "refund_id", "payment_intent_id", "reason", "patient_id", "hold_id", "invoice_id",
                "amount_cents", "currency"),
    "fees": ("posted_at", "invoice_id", "patient_id", "reason", "fee_cents", "currency", "fee_policy_version"),
    "ledger": ("posted_at", "entry_id", "cause", "kind", "account", "amount_cents", "currency", "patient_id",
               "hold_id", "invoice_id", "purchase_id"),
    "daily-revenue": ("date", "currency", "visit_revenue_cents", "discounts_cents", "fee_revenue_cents",
                      "refunds_cents", "processor_fees_cents", "net_revenue_cents"),
}
KINDS = tuple(COLUMNS)
#: The journal entries of money Stripe moved: charges (a hold's deposit, an invoice's balance, a package sold) and
#: refunds. Reconciliation compares exactly these with Stripe's balance transactions.
CHARGE_KINDS = ("deposit", "balance", "package")
STRIPE_KINDS = (*CHARGE_KINDS, "refund")
#: Which journal entries each export reads (None: all).
ENTRY_KINDS: dict[str, tuple[str, ...] | None] = {
    "payments": CHARGE_KINDS, "refunds": ("refund",), "fees": ("called_off",), "ledger": None,
    "daily-revenue": ("visit", "called_off", "refund", *CHARGE_KINDS),
}
#: What a line of money at Stripe belongs to: a hold, an invoice or a package purchase (lines without one, such as
#: Stripe's fee or a dispute, are not a payment's amount).
_OWNERS = ("invoice_id", "hold_id", "purchase_id")
FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


def _cash(entry: Mapping[str, Any]) -> int:
    return sum(item["amount_cents"] for item in entry["lines"]
               if item["account"] == "cash_at_stripe" and any(owner in item for owner in _OWNERS))


def _account_total(entry: Mapping[str, Any], prefix: str) -> int:
    return sum(item["amount_cents"] for item in entry["lines"] if item["account"].startswith(prefix))


def entry_rows(kind: str, entry: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The rows of one journal entry in the export ``kind`` (not the daily summary)."""
    posted = isoformat(entry["posted_at"])
    if kind == "payments":
        yield {"posted_at": posted, "payment_intent_id": entry.get("payment_intent_id"),
               "charge_id": entry.get("charge_id"), "kind": entry["kind"], "patient_id": entry.get("patient_id"),
               "hold_id": entry.get("hold_id"), "invoice_id": entry.get("invoice_id"), "amount_cents": _cash(entry),
               "fee_cents": entry.get("fee_cents", 0), "currency": entry["currency"],
               "purchase_id": entry.get("purchase_id")}
    elif kind == "refunds":
        yield {"posted_at": posted, "refund_id": entry.get("refund_id"),
               "payment_intent_id": entry.get("payment_intent_id"), "reason": entry.get("reason"),
               "patient_id": entry.get("patient_id"), "hold_id": entry.get("hold_id"),
               "invoice_id": entry.get("invoice_id"), "amount_cents": -_cash(entry), "currency": entry["currency"]}
    elif kind == "fees":
        fee = -_account_total(entry, "fee_revenue")
        if fee:
            yield {"posted_at": posted, "invoice_id": entry.get("invoice_id"), "patient_id": entry.get("patient_id"),
                   "reason": entry.get("reason"), "fee_cents": fee, "currency": entry["currency"],
                   "fee_policy_version": entry.get("fee_policy_version")}
    elif kind == "ledger":
        for item in entry["lines"]:
            yield {"posted_at": posted, "entry_id": entry["_id"], "cause": entry["cause"], "kind": entry["kind"],
                   "account": item["account"], "amount_cents": item["amount_cents"], "currency": entry["currency"],
                   "patient_id": item.get("patient_id"), "hold_id": item.get("hold_id"),
                   "invoice_id": item.get("invoice_id"), "purchase_id": item.get("purchase_id")}
    else:
        raise ValueError(f"unknown export {kind!r}")


def rows(kind: str, entries: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The export's rows from entries in ``posted_at`` order, one at a time."""
    if kind == "daily-revenue":
        yield from daily_revenue(entries)
        return
    wanted = ENTRY_KINDS[kind]
    for entry in entries:
        if wanted is None or entry["kind"] in wanted:
            yield from entry_rows(kind, entry)


def daily_revenue(entries: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """One row per UTC day and currency with revenue earned, discounts, fees kept, refunds after visits and
    Stripe's fees (revenue accounts are credits, so their signs are turned)."""
    day: tuple[date, str] | None = None
    sums: dict[str, int] = {}
    for entry in entries:
        key = (as_utc(entry["posted_at"]).date(), entry["currency"])
        if key != day:
            if day is not None:
                yield _day_row(day, sums)
            day, sums = key, {}
        for column, prefix, sign in (("visit_revenue_cents", "revenue:", -1), ("discounts_cents", "discounts", 1),
                                     ("fee_revenue_cents", "fee_revenue", -1), ("refunds_cents", "refunds", 1),
                                     ("processor_fees_cents", "processor_fees", 1)):
            sums[column] = sums.get(column, 0) + sign * _account_total(entry, prefix)
    if day is not None:
        yield _day_row(day, sums)


def _day_row(day: tuple[date, str], sums: dict[str, int]) -> dict[str, Any]:
    row = {"date": day[0].isoformat(), "currency": day[1],
           **{column: sums.get(column, 0) for column in COLUMNS["daily-revenue"][2:-1]}}
    row["net_revenue_cents"] = (row["visit_revenue_cents"] - row["discounts_cents"] + row["fee_revenue_cents"]
                                - row["refunds_cents"] - row["processor_fees_cents"])
    return row


def as_csv(kind: str, rows_: Iterable[Mapping[str, Any]], header: bool = True) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS[kind], extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows_:
        writer.writerow(row)
        if buffer.tell() > 16_384:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def as_jsonl(rows_: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    for row in rows_:
        yield json.dumps(row, separators=(",", ":")) + "\n"


def encoded(kind: str, fmt: str, rows_: Iterable[Mapping[str, Any]], header: bool = True) -> Iterator[str]:
    if fmt == "csv":
        return as_csv(kind, rows_, header=header)
    if fmt == "jsonl":
        return as_jsonl(rows_)
    raise ValueError(f"unknown format {fmt!r}")


# --- reconciliation ----------------------------------------------------------------------------------------


def ledger_movements(entries: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """What the ledger says Stripe moved: each charge (by charge id: deposits, balances, packages) and each refund
    (by refund id)."""
    for entry in entries:
        if entry["kind"] in CHARGE_KINDS:
            yield {"source": entry.get("charge_id") or entry.get("payment_intent_id"), "amount_cents": _cash(entry),
                   "fee_cents": entry.get("fee_cents", 0), "entry_id": entry["_id"]}
        elif entry["kind"] == "refund":
            yield {"source": entry.get("refund_id"), "amount_cents": _cash(entry), "fee_cents": 0,
                   "entry_id": entry["_id"]}


def reconcile(movements: Iterable[Mapping[str, Any]],
              transactions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every difference between the ledger and Stripe's balance transactions (charges and refunds): missing on
    either side, a different amount, a different fee."""
    ours = {movement["source"]: movement for movement in movements}
    differences = []
    for transaction in transactions:
        if transaction.get("type") not in ("charge", "payment", "refund", "payment_refund"):
            continue
        movement = ours.pop(transaction["source"], None)
        if movement is None:
            differences.append({"problem": "missing_in_ledger", "source": transaction["source"],
                                "stripe_amount_cents": transaction["amount"], "ledger_amount_cents": None})
        elif movement["amount_cents"] != transaction["amount"]:
            differences.append({"problem": "amount_differs", "source": transaction["source"],
                                "stripe_amount_cents": transaction["amount"],
                                "ledger_amount_cents": movement["amount_cents"]})
        elif movement["fee_cents"] != transaction.get("fee", 0):
            differences.append({"problem": "fee_differs", "source": transaction["source"],
                                "stripe_fee_cents": transaction.get("fee", 0),
                                "ledger_fee_cents": movement["fee_cents"]})
    differences += [{"problem": "missing_at_stripe", "source": source, "stripe_amount_cents": None,
                     "ledger_amount_cents": movement["amount_cents"]} for source, movement in ours.items()]
    return differences


class Counted:
    """The entries of an iterable as they go by, counted (an export page says how many entries it read)."""

    def __init__(self, entries: Iterable[Mapping[str, Any]]) -> None:
        self.entries = entries
        self.count = 0

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for entry in self.entries:
            self.count += 1
            yield entry


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """``[start, end]`` as UTC instants, the end day included."""
    return (datetime.combine(start, time(), tzinfo=UTC), datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC))
