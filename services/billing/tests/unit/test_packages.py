"""A package's visits are worth exactly what was paid, slot by slot; a package pays only for its own visit type
before it expires, soonest-expiring first; a visit it pays for is priced at the package's price per visit; a
package's status and visits left follow its slots and its expiry."""

from datetime import UTC, datetime, timedelta

import pytest

from services.billing import packages
from services.billing.domain import invoice_from_quote

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
TERMS = {"visit_type": "iv-mood", "visits": 6, "valid_days": 90}


@pytest.mark.parametrize(("amount", "visits", "values"), [
    (302500, 6, [50417, 50417, 50417, 50417, 50416, 50416]),
    (300000, 6, [50000] * 6),
    (5, 3, [2, 2, 1]),
    (0, 2, [0, 0]),
])
def test_the_slots_of_a_package_add_up_to_what_was_paid(amount, visits, values):
    assert packages.slot_values(amount, visits) == values
    assert sum(values) == amount


def test_a_package_bought_has_one_free_slot_per_visit():
    package = packages.bought("pkg_1", "pat_1", "induction-6", TERMS, 302500, "usd", "2026-11-01", NOW,
                              NOW + timedelta(days=90), "pi_1")

    assert package["slots"] == [None] * 6 and packages.free_slots(package) == list(range(6))
    assert (package["visits_used"], sum(package["slot_values"])) == (0, 302500)
    assert packages.free_slots({**package, "slots": ["inv_1", None, "inv_2", None, None, None]}) == [1, 3, 4, 5]
    assert packages.free_slots({"_id": "pkg_old"}) == []  # bought before slots were kept: draws on nothing


@pytest.mark.parametrize(("visit_type", "currency", "start", "covered"), [
    ("iv-mood", "usd", NOW + timedelta(days=10), True),
    ("iv-mood", "usd", NOW + timedelta(days=90), True),          # on the last day
    ("iv-mood", "usd", NOW + timedelta(days=91), False),         # after it expired
    ("iv-pain", "usd", NOW + timedelta(days=10), False),         # another visit type
    ("iv-mood", "eur", NOW + timedelta(days=10), False),
])
def test_a_package_pays_for_its_own_visit_type_before_it_expires(visit_type, currency, start, covered):
    package = packages.bought("pkg_1", "pat_1", "induction-6", TERMS, 302500, "usd", "v", NOW,
                              NOW + timedelta(days=90), "pi_1")
    assert packages.covers(package, visit_type, currency, start) is covered


def test_the_package_expiring_soonest_is_drawn_on_first():
    later = {"_id": "pkg_a", "expires_at": NOW + timedelta(days=60)}
    sooner = {"_id": "pkg_b", "expires_at": NOW + timedelta(days=30)}
    assert [p["_id"] for p in packages.claim_order([later, sooner])] == ["pkg_b", "pkg_a"]


def test_a_visit_paid_by_a_credit_is_priced_at_the_packages_price_per_visit_travel_still_due():
    quote = {"currency": "usd", "lines": [{"code": "iv-mood", "amount_cents": 60000},
                                          {"code": "travel-regional", "amount_cents": 5000}],
             "discount_cents": 6000, "total_cents": 59000, "deposit_cents": 0, "catalogue_version": "v"}
    invoice = invoice_from_quote("inv_1", "apt_1", "pat_1", NOW, quote)
    package = packages.bought("pkg_1", "pat_1", "induction-6", TERMS, 302500, "usd", "v", NOW,
                              NOW + timedelta(days=90), "pi_1")
    claim = packages.credit("inv_1", package, 4, NOW)

    priced = packages.priced_with_credit(invoice, "iv-mood", claim)

    assert claim["value_cents"] == 50416
    assert (priced["discount_cents"], priced["total_cents"], priced["amount_due_cents"]) == (9584, 55416, 5000)
    assert priced["package_credit"] == {"purchase_id": "pkg_1", "package": "induction-6", "slot": 4,
                                        "value_cents": 50416, "status": "applied"}


def with_slots(*slots):
    package = packages.bought("pkg_1", "pat_1", "induction-6", {**TERMS, "visits": len(slots)}, 302500, "usd",
                              "2026-11-01", NOW, NOW + timedelta(days=90), "pi_1")
    return {**package, "slots": list(slots), "visits_used": sum(1 for s in slots if str(s).startswith("inv_"))}


@pytest.mark.parametrize(("slots", "now", "status", "left"), [
    ((None, "inv_1", None), NOW, "active", 2),
    (("inv_1", "inv_2", "inv_3"), NOW, "used_up", 0),
    ((None, "inv_1", None), NOW + timedelta(days=91), "expired", 0),
    (("declined", "inv_1", "declined"), NOW, "declined", 0),
])
def test_a_packages_status_and_visits_left(slots, now, status, left):
    summary = packages.summary(with_slots(*slots), now)

    assert (summary["status"], summary["visits_left"]) == (status, left)


def test_the_slots_closed_with_a_mark_are_listed_with_their_values():
    package = with_slots("expired", "inv_1", "expired")

    assert packages.slots_marked(package, packages.EXPIRED) == [(0, 100834), (2, 100833)]
    assert packages.slots_marked(package, packages.DECLINED) == []
