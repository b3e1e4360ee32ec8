"""The visit's rules: the order of steps, the pre-dose gate (fasting, escort, consent, pregnancy, 160/90 and a
heart rate of 100 by default), vitals flagged or refused, and the dose per kilogram."""

from decimal import Decimal

import pytest

from services.scheduling.dependencies import load_visit_rules
from services.scheduling.visits import (
    StepRefused,
    check_transition,
    evaluate_pre_checks,
    flag_vitals,
    mg_per_kg,
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
