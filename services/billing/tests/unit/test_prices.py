"""What a visit costs: integer cents from the catalogue version in force, and a catalogue that cannot price
an IV dose below $400 or above $2,000 (a typo in a price must stop the service, not reach a patient).
"""

from datetime import UTC, datetime

import pytest

from chassis.config import ConfigurationInvalid, VersionedConfig
from services.billing.dependencies import load_price_catalogue
from services.billing.domain import LineItem, PriceCatalogueSchema, Quote, UnknownPriceItem, quote_visit
from services.scheduling.dependencies import load_calendar

CATALOGUE = load_price_catalogue()


def a_catalogue(version: str = "v1", effective_from: str = "2026-11-01T00:00:00Z", mood_cents: int = 60000,
                dose_range: tuple[int, int] = (40000, 200000)) -> dict:
    return {"version": version, "effective_from": effective_from, "currency": "usd",
            "iv_dose_range_cents": list(dose_range),
            "items": {"iv-mood": {"description": "Home IV visit, mood protocol", "amount_cents": mood_cents,
                                  "iv_dose": True},
                      "consult": {"description": "Consultation visit", "amount_cents": 0, "iv_dose": False}}}


def load(*versions: dict) -> VersionedConfig:
    return VersionedConfig.from_document("prices", {"versions": list(versions)}, PriceCatalogueSchema())


@pytest.mark.parametrize(("visit_type", "cents"), [("iv-mood", 60000), ("iv-pain", 100000), ("consult", 0)])
def test_each_visit_type_is_quoted_from_the_real_catalogue(visit_type, cents):
    catalogue = CATALOGUE.effective_at(datetime(2026, 11, 23, tzinfo=UTC))

    quote = quote_visit(catalogue, visit_type)

    assert quote.currency == "usd"
    assert quote.catalogue_version == catalogue.version
    assert [(i.code, i.quantity, i.unit_amount_cents) for i in quote.line_items] == [(visit_type, 1, cents)]
    assert quote.total_cents == cents


def test_a_visit_type_without_a_price_cannot_be_quoted():
    with pytest.raises(UnknownPriceItem, match="iv-party"):
        quote_visit(CATALOGUE.effective_at(), "iv-party")


def test_every_visit_type_the_calendar_offers_has_a_price():
    offered = set(load_calendar().effective_at()["visit_types"])
    priced = set(CATALOGUE.effective_at()["items"])
    assert offered <= priced, f"visits that could be booked but never invoiced: {offered - priced}"


def test_a_quote_totals_its_lines_in_whole_cents():
    quote = Quote("usd", [LineItem("iv-mood", "Visit", 1, 60000), LineItem("supplies", "Kit", 3, 1999)], "v1")
    assert quote.total_cents == 60000 + 3 * 1999


@pytest.mark.parametrize(("mood_cents", "accepted"), [
    (39999, False),   # one cent under $400
    (40000, True),    # $400.00
    (200000, True),   # $2,000.00
    (200001, False),  # one cent over $2,000
    (6000, False),    # a dropped zero
])
def test_the_catalogue_refuses_an_iv_dose_below_400_or_above_2000_dollars(mood_cents, accepted):
    if accepted:
        assert load(a_catalogue(mood_cents=mood_cents)).effective_at()["items"]["iv-mood"]["amount_cents"] == mood_cents
    else:
        with pytest.raises(ConfigurationInvalid, match="iv-mood: an IV dose must cost between 40000 and 200000"):
            load(a_catalogue(mood_cents=mood_cents))


@pytest.mark.parametrize(("dose_range", "mood_cents"), [
    ((100, 200000), 100),                # a $1 dose, let through by lowering the floor
    ((40000, 10_000_000), 5_000_000),    # a $50,000 dose, let through by raising the ceiling
    ((90000, 50000), 60000),             # a range upside down
])
def test_a_catalogue_cannot_move_the_iv_dose_bounds(dose_range, mood_cents):
    with pytest.raises(ConfigurationInvalid):
        load(a_catalogue(mood_cents=mood_cents, dose_range=dose_range))


def test_a_free_visit_is_allowed_when_it_is_not_an_iv_dose():
    assert load(a_catalogue()).effective_at()["items"]["consult"]["amount_cents"] == 0


@pytest.mark.parametrize("item", [
    {"description": "Visit", "amount_cents": 600.0, "iv_dose": True},    # cents are whole numbers
    {"description": "Visit", "amount_cents": "60000", "iv_dose": True},
    {"description": "Visit", "amount_cents": -1, "iv_dose": False},
    {"description": "Visit", "amount_cents": 60000},                     # is it an IV dose? say so
])
def test_a_price_that_is_not_a_whole_non_negative_number_of_cents_is_refused(item):
    catalogue = a_catalogue()
    catalogue["items"]["iv-mood"] = item
    with pytest.raises(ConfigurationInvalid):
        load(catalogue)


@pytest.mark.parametrize(("moment", "version", "cents"), [
    ("2026-12-31T23:59:59.999999+00:00", "2026-11-01", 60000),
    ("2027-01-01T00:00:00+00:00", "2027-01-01", 65000),  # the new price applies from its first instant
    ("2027-06-01T00:00:00+00:00", "2027-01-01", 65000),
])
def test_a_visit_is_priced_by_the_catalogue_in_force_at_the_time(moment, version, cents):
    catalogue = load(a_catalogue("2027-01-01", "2027-01-01T00:00:00Z", mood_cents=65000),
                     a_catalogue("2026-11-01", "2026-11-01T00:00:00Z", mood_cents=60000))

    quote = quote_visit(catalogue.effective_at(datetime.fromisoformat(moment)), "iv-mood")

    assert (quote.catalogue_version, quote.total_cents) == (version, cents)


def test_nothing_can_be_priced_before_the_first_catalogue():
    with pytest.raises(ConfigurationInvalid, match="no version in force"):
        load(a_catalogue()).effective_at(datetime(2026, 10, 31, tzinfo=UTC))
