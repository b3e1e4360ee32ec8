"""Who may visit a patient: an active nurse with a current RN licence in the patient's state, whose service
area (a travel radius around the home base, or a list of ZIP codes) holds the patient's address."""

from datetime import date

import pytest

from chassis.errors import InvalidInput
from chassis.service import validated
from services.scheduling.roster import locate, nurses_for, serves, why_not
from services.scheduling.schemas import NurseSchema

DENVER_HOME = {"latitude": 39.7392, "longitude": -104.9903}
DOWNTOWN = "80202"   # Denver
BOULDER = "80302"    # about 25 miles north-west
DAY = date(2026, 12, 1)


def nurse(nurse_id: str, *licences: tuple[str, str], area: dict | None = None, active: bool = True) -> dict:
    return {"_id": nurse_id, "active": active, "home_base": DENVER_HOME,
            "service_area": area if area is not None else {"radius_miles": 15},
            "licences": [{"state": state, "number": "RN-1", "expires_on": expires} for state, expires in licences]}


def test_zip_codes_are_placed_from_the_offline_table():
    latitude, longitude = locate(DOWNTOWN)
    assert 39.7 < latitude < 39.8 and -105.1 < longitude < -104.9
    assert locate("80202-1234") == locate(DOWNTOWN)
    assert locate("00000") is None and locate("abc") is None


@pytest.mark.parametrize(("area", "postal_code", "served"), [
    ({"radius_miles": 15}, DOWNTOWN, True),
    ({"radius_miles": 15}, BOULDER, False),
    ({"radius_miles": 40}, BOULDER, True),
    ({"postal_codes": [BOULDER]}, BOULDER, True),
    ({"postal_codes": [BOULDER]}, DOWNTOWN, False),
    ({"radius_miles": 1, "postal_codes": [BOULDER]}, BOULDER, True),
])
def test_a_nurse_serves_addresses_within_their_radius_or_in_their_zip_codes(area, postal_code, served):
    assert serves(nurse("nur_kim", ("CO", "2027-12-31"), area=area), postal_code, locate(postal_code)) is served


ROSTER = [
    nurse("nur_zoe", ("CO", "2027-12-31"), ("NY", "2027-12-31")),
    nurse("nur_kim", ("CO", "2027-12-31")),
    nurse("nur_lee", ("NY", "2027-12-31")),
    nurse("nur_max", ("CO", "2027-12-31"), active=False),
    nurse("nur_old", ("CO", "2026-11-30")),                          # expired the day before
    nurse("nur_far", ("CO", "2027-12-31"), area={"postal_codes": [BOULDER]}),
]


@pytest.mark.parametrize(("state", "day", "chosen"), [
    ("CO", DAY, ["nur_kim", "nur_zoe"]),
    ("CO", date(2026, 11, 30), ["nur_kim", "nur_old", "nur_zoe"]),   # the last day of that licence
    ("TX", DAY, []),
])
def test_only_active_nurses_with_a_current_licence_in_the_state_who_serve_the_address_may_visit(state, day, chosen):
    assert [n["_id"] for n in nurses_for(ROSTER, state, DOWNTOWN, locate(DOWNTOWN), day)] == chosen


@pytest.mark.parametrize(("nurse_id", "reason"), [
    ("nur_kim", None), ("nur_lee", "not_licensed_in_state"), ("nur_max", "nurse_inactive"),
    ("nur_old", "licence_expired"), ("nur_far", "outside_service_area"),
])
def test_a_named_nurse_who_may_not_visit_is_refused_with_the_reason(nurse_id, reason):
    named = next(n for n in ROSTER if n["_id"] == nurse_id)
    assert why_not(named, "CO", DOWNTOWN, locate(DOWNTOWN), DAY) == reason


GOOD = {"id": "nur_kim", "name": "Kim Lee, RN", "time_zone": "America/Denver",
        "licences": [{"state": "CO", "number": "RN-123", "expires_on": "2027-12-31"}],
        "home_base": DENVER_HOME, "service_area": {"radius_miles": 20},
        "weekly_hours": {"mon": [{"start": "08:00", "end": "17:00"}]}}


@pytest.mark.parametrize(("change", "field"), [
    ({"licences": [{"state": "WU", "number": "RN-1", "expires_on": "2027-12-31"}]}, "licences"),  # no such state
    ({"licences": []}, "licences"),
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"home_base": {"latitude": 91, "longitude": 0}}, "home_base"),
    ({"service_area": {}}, "service_area"),
    ({"weekly_hours": {"mon": [{"start": "17:00", "end": "08:00"}]}}, "weekly_hours"),
    ({"weekly_hours": {"monday": []}}, "weekly_hours"),
    ({"id": "kim"}, "id"),
])
def test_a_nurse_record_that_breaks_a_rule_is_refused_naming_the_field(change, field):
    with pytest.raises(InvalidInput) as refused:
        validated(NurseSchema(), {**GOOD, **change})
    assert list(refused.value.details["errors"]) == [field]


def test_territories_and_dc_are_states_a_licence_may_name():
    for state in ("DC", "PR", "GU"):
        validated(NurseSchema(), {**GOOD, "licences": [{"state": state, "number": "RN-9", "expires_on": "2027-01-01"}]})
