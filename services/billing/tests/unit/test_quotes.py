"""A quote, from the real catalogue: the visit, the travel fee of the patient's zone, the best discount
(on the visit, not the travel), the deposit due now (25%, at least $150, never above the total), the balance
after the visit, packages paid in full."""

import pytest

from services.billing.catalogue import UnknownPriceItem, percent_of, quote_package, quote_visit, travel_zone
from services.billing.dependencies import load_price_catalogue

CATALOGUE = load_price_catalogue().effective_at()


@pytest.mark.parametrize(("visit_type", "postal_code", "codes", "lines", "discount", "total", "deposit"), [
    ("iv-mood", None, [], [("iv-mood", 60000)], 0, 60000, 15000),
    ("iv-mood", "80202", [], [("iv-mood", 60000)], 0, 60000, 15000),                       # metro: no fee
    ("iv-mood", "80401", [], [("iv-mood", 60000), ("travel-regional", 5000)], 0, 65000, 16250),
    ("iv-mood", "59001", [], [("iv-mood", 60000), ("travel-extended", 10000)], 0, 70000, 17500),  # default
    ("iv-mood", "80401", ["veteran"], [("iv-mood", 60000), ("travel-regional", 5000)], 6000, 59000, 15000),
    ("iv-mood", None, ["veteran", "first-responder"], [("iv-mood", 60000)], 6000, 54000, 15000),  # no stacking
    ("iv-pain", "80202", [], [("iv-pain", 100000)], 0, 100000, 25000),
    ("iv-booster", None, [], [("iv-booster", 50000)], 0, 50000, 15000),
    ("sublingual", None, [], [("sublingual", 22500)], 0, 22500, 15000),
    ("sublingual", None, ["veteran"], [("sublingual", 22500)], 2250, 20250, 15000),
    ("consult", "59001", [], [("consult", 0)], 0, 0, 0),                                     # free, no travel
])
def test_a_visit_quote(visit_type, postal_code, codes, lines, discount, total, deposit):
    quote = quote_visit(CATALOGUE, visit_type, postal_code=postal_code, discount_codes=codes)

    assert [(line.code, line.amount_cents) for line in quote.line_items] == lines
    assert (quote.discount_cents, quote.total_cents, quote.deposit_cents) == (discount, total, deposit)
    assert quote.balance_cents == total - deposit
    assert quote.catalogue_version == CATALOGUE.version


@pytest.mark.parametrize(("postal_code", "zone"), [
    ("80202", "metro"), ("80401", "regional"), ("80501-1234", "regional"), ("10001", "extended")])
def test_the_travel_zone_is_the_longest_matching_postal_prefix_else_the_default(postal_code, zone):
    assert travel_zone(CATALOGUE, postal_code) == zone


@pytest.mark.parametrize(("amount", "percent", "cents"), [(60000, 10, 6000), (22555, 10, 2256), (1, 25, 0),
                                                          (2, 25, 1)])
def test_a_percentage_is_whole_cents_half_a_cent_rounded_up(amount, percent, cents):
    assert percent_of(amount, percent) == cents


def test_an_unknown_discount_code_is_refused_with_its_field():
    with pytest.raises(UnknownPriceItem) as refused:
        quote_visit(CATALOGUE, "iv-mood", discount_codes=["friends-and-family"])
    assert refused.value.details["errors"] == {"discount_codes": ["unknown: friends-and-family"]}


def test_a_package_is_paid_in_full_and_costs_less_than_its_visits_one_by_one():
    quote = quote_package(CATALOGUE, "induction-6")

    assert [(line.code, line.amount_cents) for line in quote.line_items] == [("package-induction-6", 302500)]
    assert quote.deposit_cents == quote.total_cents == 302500 and quote.balance_cents == 0
    assert quote.total_cents < 6 * CATALOGUE["items"]["iv-mood"]["amount_cents"]
    assert (quote.visit_type, quote.extra["visits"]) == ("iv-mood", 6)


def test_an_unknown_package_is_refused():
    with pytest.raises(UnknownPriceItem, match="induction-99"):
        quote_package(CATALOGUE, "induction-99")
