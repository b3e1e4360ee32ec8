"""Finance exports are rows made one at a time from journal entries, and reconciliation lists every difference
between the ledger and Stripe's balance transactions."""

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from services.billing import exports, ledger
from services.billing.commands import write_export

DAY_1, DAY_2 = datetime(2026, 11, 24, 15, tzinfo=UTC), datetime(2026, 11, 25, 9, tzinfo=UTC)
LINES = [{"code": "iv-mood", "amount_cents": 60000}]


def journal() -> list[dict]:
    return [
        ledger.deposit_received("pi_dep", "hld_1", "pat_1", 15000, 465, "usd", DAY_1, "ch_dep"),
        ledger.invoice_opened("inv_1", "pat_1", 60000, 15000, "hld_1", "usd", DAY_1),
        ledger.visit_given("inv_1", "pat_1", LINES, 0, "usd", DAY_2),
        ledger.balance_received("pi_bal", "inv_1", "pat_1", 45000, 1335, "usd", DAY_2, "ch_bal"),
        ledger.refund_paid("refund:manual:x", "re_1", "revenue", "pat_1", 2000, "usd", DAY_2, invoice_id="inv_1"),
    ]


@pytest.mark.parametrize(("kind", "expected"), [
    ("payments", [("pi_dep", 15000, 465), ("pi_bal", 45000, 1335)]),
    ("refunds", [("re_1", 2000)]),
    ("fees", []),
])
def test_the_rows_of_each_export(kind, expected):
    rows = list(exports.rows(kind, journal()))
    keys = {"payments": ("payment_intent_id", "amount_cents", "fee_cents"), "refunds": ("refund_id", "amount_cents"),
            "fees": ("invoice_id",)}[kind]
    assert [tuple(row[key] for key in keys) for row in rows] == expected


def test_the_ledger_export_has_a_row_per_line_summing_to_zero():
    rows = list(exports.rows("ledger", journal()))
    assert len(rows) == sum(len(entry["lines"]) for entry in journal())
    assert sum(row["amount_cents"] for row in rows) == 0


def test_the_daily_revenue_summary_has_one_row_per_day():
    rows = list(exports.rows("daily-revenue", journal()))

    assert [(row["date"], row["visit_revenue_cents"], row["refunds_cents"], row["processor_fees_cents"])
            for row in rows] == [("2026-11-24", 0, 0, 465), ("2026-11-25", 60000, 2000, 1335)]
    assert rows[1]["net_revenue_cents"] == 60000 - 2000 - 1335


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_export_is_written_as_csv_or_json_lines(fmt):
    out = io.StringIO()

    written = write_export(exports.rows("payments", journal()), "payments", fmt, out)

    assert written == 2
    if fmt == "csv":
        parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert [row["payment_intent_id"] for row in parsed] == ["pi_dep", "pi_bal"]
        assert list(parsed[0]) == list(exports.COLUMNS["payments"])
    else:
        assert [json.loads(line)["amount_cents"] for line in out.getvalue().splitlines()] == [15000, 45000]


def test_a_large_export_is_produced_row_by_row():
    entries = (ledger.deposit_received(f"pi_{n}", f"hld_{n}", "pat_1", 15000, 0, "usd", DAY_1)
               for n in range(20000))
    chunks = exports.encoded("payments", "csv", exports.rows("payments", entries))
    first = next(chunks)
    assert first.startswith("posted_at,") and len(first) < 20_000  # a chunk, not the whole export


def test_reconciliation_lists_every_difference():
    stripe = [{"type": "charge", "source": "ch_dep", "amount": 15000, "fee": 465},
              {"type": "charge", "source": "ch_bal", "amount": 45000, "fee": 1300},     # fee differs
              {"type": "refund", "source": "re_1", "amount": -2500, "fee": 0},         # amount differs
              {"type": "charge", "source": "ch_unknown", "amount": 9900, "fee": 0},    # not in the ledger
              {"type": "payout", "source": "po_1", "amount": -50000, "fee": 0}]        # not a payment
    entries = [*journal(), ledger.balance_received("pi_x", "inv_2", "pat_2", 100, 0, "usd", DAY_2, "ch_missing")]

    differences = exports.reconcile(exports.ledger_movements(entries), stripe)

    assert sorted((d["problem"], d["source"]) for d in differences) == [
        ("amount_differs", "re_1"), ("fee_differs", "ch_bal"), ("missing_at_stripe", "ch_missing"),
        ("missing_in_ledger", "ch_unknown")]


def test_a_package_sold_is_a_payment_and_reconciles_with_its_charge():
    entries = [*journal(), ledger.package_sold("pi_pkg", "pkg_1", "pat_1", 302500, 8800, "usd", DAY_2, "ch_pkg")]

    payments = list(exports.rows("payments", entries))
    stripe = [{"type": "charge", "source": "ch_dep", "amount": 15000, "fee": 465},
              {"type": "charge", "source": "ch_bal", "amount": 45000, "fee": 1335},
              {"type": "refund", "source": "re_1", "amount": -2000, "fee": 0},
              {"type": "charge", "source": "ch_pkg", "amount": 302500, "fee": 8800}]

    assert [(row["kind"], row["amount_cents"], row["fee_cents"], row["purchase_id"]) for row in payments][-1] == (
        "package", 302500, 8800, "pkg_1")
    assert exports.reconcile(exports.ledger_movements(entries), stripe) == []
    assert [d["problem"] for d in exports.reconcile(exports.ledger_movements(journal()), stripe)] == [
        "missing_in_ledger"]
    assert [row["processor_fees_cents"] for row in exports.rows("daily-revenue", entries)][-1] == 1335 + 8800


def test_a_ledger_and_stripe_that_agree_have_no_differences():
    stripe = [{"type": "charge", "source": "ch_dep", "amount": 15000, "fee": 465},
              {"type": "charge", "source": "ch_bal", "amount": 45000, "fee": 1335},
              {"type": "refund", "source": "re_1", "amount": -2000, "fee": 0}]
    assert exports.reconcile(exports.ledger_movements(journal()), stripe) == []
