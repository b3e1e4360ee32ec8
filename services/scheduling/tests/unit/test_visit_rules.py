"""The visit's rules: the order of steps, the pre-dose gate (fasting, escort, consent, pregnancy, 160/90 and a
heart rate of 100 by default), vitals flagged or refused, and the dose per kilogram."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.scheduling.dependencies import load_visit_rules
from services.scheduling.visits import (
    StepRefused,
    check_medication_entry,
    check_transition,
    evaluate_pre_checks,
    flag_vitals,
    mg_per_kg,
    next_vitals_due,
    reading_timing,
)

RULES = load_visit_rules().effective_at()
GOOD = {"systolic": 128, "diastolic": 82, "heart_rate": 76, "spo2": 98}
CHECKS = {"fasting_hours": 6, "escort_present": True, "consent_reconfirmed": True, "pregnancy_possible": False,
          "weight_kg": 70, "baseline": GOOD}


@pytest.mark.parametrize(("state", "step", "allowed"), [
    (None, "en_route", True), ("en_route", "arrived", True), ("arrived", "pre_checks", True),
    ("pre_checks", "started", True), ("started", "completed", True), ("completed", "discharged", True),
    ("arrived", "no_show", True), ("started", "aborted", True),
    (None, "started", False), ("en_route", "en_route", False), ("arrived", "started", False),
    ("completed", "aborted", False), ("discharged", "en_route", False), ("aborted", "arrived", False),
    ("started", "no_show", False),
])
def test_a_visit_goes_step_by_step_and_may_be_aborted_until_it_is_completed(state, step, allowed):
    if allowed:
        check_transition(state, step)
    else:
        with pytest.raises(StepRefused) as refused:
            check_transition(state, step)
        assert refused.value.reason == "illegal_transition"


@pytest.mark.parametrize(("visit_type", "change", "reason", "chargeable"), [
    ("iv-mood", {}, None, False),
    ("iv-mood", {"fasting_hours": 3.5}, "not_fasted", True),     # 4 hours for a mood infusion
    ("iv-pain", {"fasting_hours": 5}, "not_fasted", True),       # 6 for a pain infusion
    ("consult", {"fasting_hours": 0}, None, False),
    ("iv-mood", {"escort_present": False}, "no_escort", True),
    ("iv-mood", {"consent_reconfirmed": False}, "consent_not_reconfirmed", True),
    ("iv-mood", {"pregnancy_possible": True}, "possible_pregnancy", False),
    ("iv-mood", {"pregnancy_possible": None}, "possible_pregnancy", False),   # not answered is not a no
    ("iv-mood", {"baseline": {**GOOD, "systolic": 160, "diastolic": 90, "heart_rate": 100}}, None, False),
    ("iv-mood", {"baseline": {**GOOD, "systolic": 161}}, "baseline_vitals_out_of_limits", False),
    ("iv-mood", {"baseline": {**GOOD, "diastolic": 91}}, "baseline_vitals_out_of_limits", False),
    ("iv-mood", {"baseline": {**GOOD, "heart_rate": 101}}, "baseline_vitals_out_of_limits", False),
    ("iv-mood", {"fasting_hours": 1, "escort_present": False}, "not_fasted", True),  # the first failed check
])
def test_the_pre_dose_gate(visit_type, change, reason, chargeable):
    outcome = evaluate_pre_checks({**CHECKS, **change}, visit_type, RULES)
    assert (outcome.passed, outcome.reason, outcome.chargeable) == (reason is None, reason, chargeable)


@pytest.mark.parametrize(("reading", "flags"), [
    (GOOD, []),
    ({**GOOD, "systolic": 181}, ["systolic"]),
    ({**GOOD, "heart_rate": 121, "spo2": 91}, ["heart_rate", "spo2"]),
])
def test_vitals_during_the_infusion_are_flagged_outside_the_limits(reading, flags):
    assert flag_vitals(reading, RULES) == flags


@pytest.mark.parametrize("reading", [{**GOOD, "systolic": 400}, {**GOOD, "spo2": 101}, {**GOOD, "heart_rate": 0}])
def test_vitals_no_patient_can_have_are_refused(reading):
    with pytest.raises(StepRefused) as refused:
        flag_vitals(reading, RULES)
    assert refused.value.reason == "vitals_out_of_physiological_range"


@pytest.mark.parametrize(("amount", "weight", "per_kg"), [
    ("35", "70", Decimal("0.500")), ("52.5", "70", Decimal("0.750")), ("30", "81.3", Decimal("0.369")),
    ("30", None, None),
])
def test_the_dose_per_kilogram_uses_the_weight_taken_at_the_pre_checks(amount, weight, per_kg):
    assert mg_per_kg(Decimal(amount), Decimal(weight) if weight else None) == per_kg


@pytest.mark.parametrize(("state", "kind", "refused"), [
    ("pre_checks", "drawn", None), ("started", "given", None), ("completed", "wasted", None),
    ("aborted", "wasted", None),            # drawn, then the visit aborted: the waste is still recorded
    ("discharged", "correction", None),     # a mistake found after the discharge
    ("aborted", "correction", None),
    ("aborted", "drawn", "visit_over"), ("discharged", "given", "visit_over"),
    (None, "drawn", "not_monitoring"), ("arrived", "wasted", "not_monitoring"), ("no_show", "wasted", "not_monitoring"),
])
def test_the_controlled_substance_record_takes_a_waste_or_correction_after_the_visit_ends(state, kind, refused):
    if refused is None:
        check_medication_entry(state, kind)
        return
    with pytest.raises(StepRefused) as raised:
        check_medication_entry(state, kind)
    assert raised.value.reason == refused


START = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return START + timedelta(minutes=n)


@pytest.mark.parametrize(("state", "earlier", "taken_at", "late", "overdue"), [
    ("started", [], minutes(10), False, 0),                 # the first reading, on time after the start
    ("started", [], minutes(13), True, 3),                  # ten minutes after the start, three late
    ("started", [minutes(9)], minutes(19), False, 0),       # ten after the previous reading
    ("started", [minutes(9)], minutes(21.5), True, 3),      # 2.5 minutes late: counted in whole minutes, up
    ("started", [minutes(-20)], minutes(12), True, 2),      # a baseline before the start does not count
    ("started", [minutes(30)], minutes(12), True, 2),       # nor a reading taken after this one (sent late)
    ("pre_checks", [], minutes(40), False, 0),              # outside the infusion no reading is late
    ("completed", [minutes(5)], minutes(40), False, 0),
])
def test_an_infusion_reading_later_than_the_interval_after_the_previous_one_is_noted(state, earlier, taken_at,
                                                                                     late, overdue):
    assert RULES["vitals_every_minutes"] == 10
    timing = reading_timing(state, START, earlier, taken_at, RULES["vitals_every_minutes"])
    assert (timing.late, timing.overdue_by_minutes) == (late, overdue)


def test_the_next_reading_is_due_an_interval_after_the_last_one_while_the_infusion_runs():
    assert next_vitals_due("started", START, [], 10) == minutes(10)
    assert next_vitals_due("started", START, [minutes(-5), minutes(12), minutes(4)], 10) == minutes(22)
    assert next_vitals_due("completed", START, [minutes(12)], 10) is None
    assert next_vitals_due("pre_checks", None, [], 10) is None
