"""What a visit costs: integer cents from the catalogue version in force, and a catalogue that cannot price
an IV dose below $400 or above $2,000, a sublingual dose outside $200-$250, or charge for the consultation
(a typo in a price must stop the service, not reach a patient).
"""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from chassis.config import ConfigurationInvalid, VersionedConfig
from services.billing.catalogue import LineItem, PriceCatalogueSchema, Quote, UnknownPriceItem, quote_visit
from services.billing.dependencies import load_price_catalogue

CATALOGUE = load_price_catalogue()
ROOT = Path(__file__).parents[4]


def a_catalogue(version: str = "v1", effective_from: str = "2026-11-01T00:00:00Z", mood_cents: int = 60000,
                dose_range: tuple[int, int] = (40000, 200000)) -> dict:
    return {"version": version, "effective_from": effective_from, "currency": "usd",
            "iv_dose_range_cents": list(dose_range),
            "items": {"iv-mood": {"description": "Home IV visit, mood protocol", "amount_cents": mood_cents,
                                  "kind": "iv"},
                      "sublingual": {"description": "Sublingual dose", "amount_cents": 22500, "kind": "sublingual"},
                      "consult": {"description": "Consultation visit", "amount_cents": 0, "kind": "consultation"}},
            "travel": {"default_zone": "far", "zones": {"far": {"description": "Travel", "fee_cents": 5000}}},
            "deposit": {"percent": 25, "minimum_cents": 15000}}


def load(*versions: dict) -> VersionedConfig:
    return VersionedConfig.from_document("prices", {"versions": list(versions)}, PriceCatalogueSchema())


@pytest.mark.parametrize(("visit_type", "cents"), [
    ("iv-mood", 60000), ("iv-booster", 50000), ("iv-pain-2h", 70000), ("iv-pain", 100000),
    ("sublingual", 22500), ("consult", 0)])
def test_each_visit_type_is_quoted_from_the_real_catalogue(visit_type, cents):
    catalogue = CATALOGUE.effective_at(datetime(2026, 11, 23, tzinfo=UTC))

    quote = quote_visit(catalogue, visit_type)

    assert quote.currency == "usd"
    assert quote.catalogue_version == catalogue.version
    assert [(i.code, i.quantity, i.unit_amount_cents) for i in quote.line_items] == [(visit_type, 1, cents)]
    assert quote.total_cents == cents


def test_pain_infusions_are_priced_by_their_length():
    items = CATALOGUE.effective_at()["items"]
    pain = sorted((item["infusion_minutes"], item["amount_cents"]) for code, item in items.items()
                  if code.startswith("iv-pain"))
    assert [cents for _, cents in pain] == sorted(cents for _, cents in pain)
    assert len(pain) >= 2


def test_a_visit_type_without_a_price_cannot_be_quoted():
    with pytest.raises(UnknownPriceItem, match="iv-party") as refused:
        quote_visit(CATALOGUE.effective_at(), "iv-party")
    assert refused.value.status == 422 and refused.value.details["errors"] == {"visit_type": ["unknown: iv-party"]}


def test_every_visit_type_scheduling_offers_has_a_price_in_every_catalogue_in_force_with_it():
    """Fails the build when scheduling offers a visit type billing cannot price (its invoice would
    dead-letter): every version of scheduling's calendar against every catalogue version in force with it."""
    calendar = yaml.safe_load((ROOT / "services/scheduling/config/visit_types.yml").read_text())["versions"]
    for version in calendar:
        offered = set(version["visit_types"])
        effective = datetime.fromisoformat(str(version["effective_from"]).replace("Z", "+00:00"))
        for catalogue in CATALOGUE.versions:
            if catalogue.effective_from < effective and catalogue is not CATALOGUE.effective_at(effective):
                continue
            unpriced = offered - set(catalogue["items"])
            assert not unpriced, (f"visit types offered by scheduling calendar {version['version']} with no price "
                                  f"in billing catalogue {catalogue.version}: {sorted(unpriced)}")


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


@pytest.mark.parametrize(("cents", "accepted"), [(19999, False), (20000, True), (25000, True), (25001, False)])
def test_the_catalogue_refuses_a_sublingual_dose_outside_200_to_250_dollars(cents, accepted):
    catalogue = a_catalogue()
    catalogue["items"]["sublingual"]["amount_cents"] = cents
    if accepted:
        load(catalogue)
    else:
        with pytest.raises(ConfigurationInvalid, match="sublingual dose must cost between 20000 and 25000"):
            load(catalogue)


@pytest.mark.parametrize(("dose_range", "mood_cents"), [
    ((100, 200000), 100),                # a $1 dose, let through by lowering the floor
    ((40000, 10_000_000), 5_000_000),    # a $50,000 dose, let through by raising the ceiling
    ((90000, 50000), 60000),             # a range upside down
])
def test_a_catalogue_cannot_move_the_iv_dose_bounds(dose_range, mood_cents):
    with pytest.raises(ConfigurationInvalid):
        load(a_catalogue(mood_cents=mood_cents, dose_range=dose_range))


def test_the_consultation_is_free():
    assert load(a_catalogue()).effective_at()["items"]["consult"]["amount_cents"] == 0
    catalogue = a_catalogue()
    catalogue["items"]["consult"]["amount_cents"] = 5000
    with pytest.raises(ConfigurationInvalid, match="consultation is free"):
        load(catalogue)


@pytest.mark.parametrize("item", [
    {"description": "Visit", "amount_cents": 600.0, "kind": "iv"},    # cents are whole numbers
    {"description": "Visit", "amount_cents": "60000", "kind": "iv"},
    {"description": "Visit", "amount_cents": -1, "kind": "consultation"},
    {"description": "Visit", "amount_cents": 60000},                     # what kind of visit? say so
    {"description": "Visit", "amount_cents": 60000, "kind": "spa"},
])
def test_a_price_that_is_not_a_whole_non_negative_number_of_cents_of_a_known_kind_is_refused(item):
    catalogue = a_catalogue()
    catalogue["items"]["iv-mood"] = item
    with pytest.raises(ConfigurationInvalid):
        load(catalogue)


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["travel"].update(default_zone="moon"), "default_zone"),
    (lambda c: c.update(packages={"six": {"description": "6", "visit_type": "iv-nope", "visits": 6,
                                          "amount_cents": 300000, "valid_days": 90}}), "no visit type"),
    (lambda c: c.update(packages={"six": {"description": "6", "visit_type": "iv-mood", "visits": 6,
                                          "amount_cents": 360000, "valid_days": 90}}), "must cost less"),
])
def test_a_catalogue_whose_references_do_not_resolve_is_refused(change, message):
    catalogue = a_catalogue()
    change(catalogue)
    with pytest.raises(ConfigurationInvalid, match=message):
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
