"""Who may book a home visit: an adult living in a state where nurse-only home infusions are offered.

The rules come from a versioned configuration (``config/booking_rules.yml``); every answer names the
version it was decided by, so a refusal can always be traced to the rules that produced it.
"""

from datetime import UTC, date, datetime

import pytest

from chassis.config import ConfigurationInvalid, ConfigVersion, VersionedConfig
from services.intake.dependencies import load_booking_rules
from services.intake.domain import BookingRulesSchema, age_on, booking_eligibility, today_where_they_live

RULES = ConfigVersion(
    version="rules-under-test",
    effective_from=datetime(2026, 11, 1, tzinfo=UTC),
    settings={"minimum_age_years": 18, "operating_states": ["CO", "NY"]},
)


def a_patient(born: date = date(1985, 4, 2), state: str = "CO") -> dict:
    return {"date_of_birth": born, "address": {"line1": "1 Main St", "city": "Denver", "state": state,
                                               "postal_code": "80202"}}


@pytest.mark.parametrize(("born", "today", "age"), [
    (date(2008, 11, 23), date(2026, 11, 22), 17),  # the day before the 18th birthday
    (date(2008, 11, 23), date(2026, 11, 23), 18),  # on the birthday itself
    (date(2008, 11, 23), date(2026, 11, 24), 18),
    (date(2008, 12, 31), date(2026, 1, 1), 17),    # the year has turned, the birthday has not come
    (date(2008, 2, 29), date(2026, 2, 28), 17),    # born on a leap day: a year older on March 1st
    (date(2008, 2, 29), date(2026, 3, 1), 18),
    (date(2008, 2, 29), date(2028, 2, 29), 20),
])
def test_age_counts_whole_years_and_turns_on_the_birthday(born, today, age):
    assert age_on(born, today) == age


@pytest.mark.parametrize(("born", "today", "eligible"), [
    (date(2008, 11, 24), date(2026, 11, 23), False),  # 18 tomorrow
    (date(2008, 11, 23), date(2026, 11, 23), True),   # 18 today
    (date(2008, 2, 29), date(2026, 2, 28), False),
    (date(2008, 2, 29), date(2026, 3, 1), True),
    (date(1940, 1, 1), date(2026, 11, 23), True),
])
def test_a_patient_under_18_may_not_book_and_may_from_the_18th_birthday(born, today, eligible):
    decision = booking_eligibility(a_patient(born=born), RULES, today)
    assert decision.eligible is eligible
    assert decision.reasons == ([] if eligible else ["under_minimum_age"])


@pytest.mark.parametrize(("state", "eligible"), [("CO", True), ("NY", True), ("OR", False), ("TX", False)])
def test_a_patient_in_a_state_not_served_may_not_book(state, eligible):
    decision = booking_eligibility(a_patient(state=state), RULES, date(2026, 11, 23))
    assert decision.eligible is eligible
    assert decision.reasons == ([] if eligible else ["state_not_served"])


def test_a_patient_who_breaks_both_rules_is_given_both_reasons():
    decision = booking_eligibility(a_patient(born=date(2010, 6, 1), state="OR"), RULES, date(2026, 11, 23))
    assert decision.eligible is False
    assert decision.reasons == ["under_minimum_age", "state_not_served"]


@pytest.mark.parametrize("state", ["CO", "OR"])
def test_every_answer_records_the_rules_version_that_decided_it(state):
    assert booking_eligibility(a_patient(state=state), RULES, date(2026, 11, 23)).rules_version == "rules-under-test"


def test_a_later_rules_version_changes_the_answer_from_its_effective_date():
    rules = VersionedConfig.from_document("booking_rules", {"versions": [
        {"version": "v1", "effective_from": "2026-11-01T00:00:00Z", "minimum_age_years": 18,
         "operating_states": ["CO", "OR"]},
        {"version": "v2", "effective_from": "2027-01-01T00:00:00Z", "minimum_age_years": 18,
         "operating_states": ["CO"]},  # the Oregon board stopped nurse-only home infusions
    ]}, BookingRulesSchema())
    oregonian = a_patient(state="OR")

    before = booking_eligibility(oregonian, rules.effective_at(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)),
                                 date(2026, 12, 31))
    after = booking_eligibility(oregonian, rules.effective_at(datetime(2027, 1, 1, tzinfo=UTC)), date(2027, 1, 1))

    assert (before.eligible, before.rules_version) == (True, "v1")
    assert (after.eligible, after.reasons, after.rules_version) == (False, ["state_not_served"], "v2")


def test_the_real_booking_rules_load_and_admit_only_adults():
    rules = load_booking_rules().effective_at()
    assert rules["minimum_age_years"] == 18
    assert rules["operating_states"], "at least one state is served"


@pytest.mark.parametrize(("settings", "complaint"), [
    ({"minimum_age_years": 18, "operating_states": ["Colorado"]}, "operating_states"),
    ({"minimum_age_years": 18, "operating_states": ["co"]}, "operating_states"),
    ({"minimum_age_years": -1, "operating_states": ["CO"]}, "minimum_age_years"),
    ({"operating_states": ["CO"]}, "minimum_age_years"),
])
def test_a_rules_file_with_a_bad_setting_stops_the_service(settings, complaint):
    document = {"versions": [{"version": "bad", "effective_from": "2026-11-01T00:00:00Z", **settings}]}
    with pytest.raises(ConfigurationInvalid, match=complaint):
        VersionedConfig.from_document("booking_rules", document, BookingRulesSchema())


@pytest.mark.parametrize(("time_zone", "now", "expected"), [
    ("America/Los_Angeles", datetime(2026, 6, 15, 3, 0, tzinfo=UTC), date(2026, 6, 14)),  # still the 14th in LA
    ("America/New_York", datetime(2026, 6, 15, 4, 0, tzinfo=UTC), date(2026, 6, 15)),     # midnight in New York
    ("America/Denver", datetime(2026, 12, 31, 23, 0, tzinfo=UTC), date(2026, 12, 31)),
])
def test_a_birthday_is_counted_on_the_patients_own_calendar_not_utc(time_zone, now, expected):
    assert today_where_they_live(time_zone, now) == expected
