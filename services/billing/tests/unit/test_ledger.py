"""The ledger's entries balance by construction, an entry that does not is refused, and balances are sums."""

from datetime import UTC, datetime

import pytest

from services.billing import ledger

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
LINES = [{"code": "iv-mood", "amount_cents": 60000}, {"code": "travel-regional", "amount_cents": 5000}]


def a_visit_paid_for() -> list[dict]:
    return [
        ledger.deposit_received("pi_dep", "hld_1", "pat_1", 16250, 500, "usd", NOW, "ch_dep"),
        ledger.invoice_opened("inv_1", "pat_1", 59000, 16250, "hld_1", "usd", NOW),
        ledger.visit_given("inv_1", "pat_1", LINES, 6000, "usd", NOW),
        ledger.balance_received("pi_bal", "inv_1", "pat_1", 42750, 1300, "usd", NOW, "ch_bal"),
    ]


def test_a_paid_visit_balances_and_leaves_nothing_due():
    entries = a_visit_paid_for()

    assert ledger.problems(entries) == []
    assert ledger.total(entries, "receivable", invoice_id="inv_1") == 0
    assert ledger.total(entries, "deposits_held") == 0
    assert ledger.total(entries, "revenue:iv-mood") == -60000
    assert ledger.total(entries, "cash_at_stripe") == 59000 - 500 - 1300
    assert ledger.total(entries, "processor_fees") == 1800


def test_a_visit_called_off_with_a_fee_owes_the_rest_back_until_refunded():
    entries = a_visit_paid_for()[:2]
    entries.append(ledger.visit_called_off("inv_1", "pat_1", 59000, 5000, "patient_cancelled", "usd", NOW))
    assert ledger.total(entries, "receivable", invoice_id="inv_1") == -(16250 - 5000)

    entries.append(ledger.refund_paid("refund:patient_cancelled:x", "re_1", "invoice", "pat_1", 11250, "usd", NOW,
                                      invoice_id="inv_1"))

    assert ledger.total(entries, "receivable", invoice_id="inv_1") == 0
    assert ledger.total(entries, "fee_revenue") == -5000
    assert ledger.problems(entries) == []


def test_an_entry_is_one_per_cause_and_keeps_no_zero_lines():
    first = ledger.deposit_received("pi_1", "hld_1", "pat_1", 15000, 0, "usd", NOW)
    again = ledger.deposit_received("pi_1", "hld_1", "pat_1", 15000, 0, "usd", NOW)

    assert first["_id"] == again["_id"] and first["cause"] == "payment:pi_1"
    assert [line["account"] for line in first["lines"]] == ["cash_at_stripe", "deposits_held"]


def test_an_unbalanced_entry_is_refused_and_a_tampered_ledger_is_reported():
    with pytest.raises(ledger.UnbalancedEntry):
        ledger.entry("bad", "test", "usd", NOW, [ledger.line("cash_at_stripe", 100, "pat_1")])
    tampered = a_visit_paid_for()
    tampered[0]["lines"][0]["amount_cents"] += 1

    found = ledger.problems(tampered)

    assert len(found) == 2 and "off by 1 cents" in found[0] and found[1] == "the ledger is off by 1 cents"


def a_package_visit(value: int = 50417) -> list[dict]:
    """A 6-visit package bought, then a visit of it booked (priced at the package's price per visit)."""
    return [
        ledger.package_sold("pi_pkg", "pkg_1", "pat_1", 302500, 8800, "usd", NOW, "ch_pkg"),
        ledger.invoice_opened("inv_1", "pat_1", value, 0, None, "usd", NOW),
        ledger.package_credit_applied("inv_1", "pkg_1", "pat_1", value, "usd", NOW),
    ]


def test_a_package_credit_moves_one_visits_value_from_package_credits_to_the_invoice():
    entries = a_package_visit()
    applied = entries[-1]

    assert [(line["account"], line["amount_cents"]) for line in applied["lines"]] == [
        ("package_credits", 50417), ("receivable", -50417)]
    assert applied["cause"] == "package-credit:inv_1" and applied["kind"] == "package_credit"
    assert ledger.problems(entries) == []
    assert ledger.total(entries, "receivable", invoice_id="inv_1") == 0  # nothing due
    assert ledger.total(entries, "package_credits") == -(302500 - 50417)  # five visits still owed


def test_a_package_visit_given_earns_the_visit_less_the_packages_discount():
    entries = a_package_visit()
    entries.append(ledger.visit_given("inv_1", "pat_1", [{"code": "iv-mood", "amount_cents": 60000}], 60000 - 50417,
                                      "usd", NOW))

    assert ledger.problems(entries) == []
    assert ledger.total(entries, "deferred_revenue") == 0
    assert ledger.total(entries, "revenue:iv-mood") + ledger.total(entries, "discounts") == -50417


def test_a_package_visit_called_off_gives_the_credit_back_and_owes_nothing():
    entries = a_package_visit()
    entries.append(ledger.package_credit_returned("inv_1", "pkg_1", "pat_1", 50417, "usd", NOW))
    entries.append(ledger.visit_called_off("inv_1", "pat_1", 50417, 0, "patient_cancelled", "usd", NOW))

    assert [(line["account"], line["amount_cents"]) for line in entries[-2]["lines"]] == [
        ("receivable", 50417), ("package_credits", -50417)]
    assert ledger.problems(entries) == []
    assert ledger.total(entries, "receivable", invoice_id="inv_1") == 0
    assert ledger.total(entries, "package_credits") == -302500  # all six visits owed again
    assert ledger.total(entries, "deferred_revenue") == 0
