"""The home visit as plain rules: which step may follow which, the safety checks before dosing, the vitals taken
during the infusion, and the controlled-substance arithmetic. No framework, no store.

A visit goes ``en_route -> arrived -> pre_checks -> started -> completed -> discharged``; it may be ``aborted``
(with a reason, chargeable when the reason is the patient's) from any step before completion, or end as a
``no_show`` when the nurse arrives and nobody is there. Pre-checks that fail abort the visit with the first
failed check's reason. Every limit is versioned configuration (``config/visit_rules.yml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

STEPS = ("en_route", "arrived", "pre_checks", "started", "completed", "discharged", "aborted", "no_show")
NEXT_STEPS: dict[str | None, tuple[str, ...]] = {
    None: ("en_route", "aborted"),
    "en_route": ("arrived", "aborted"),
    "arrived": ("pre_checks", "aborted", "no_show"),
    "pre_checks": ("started", "aborted"),
    "started": ("completed", "aborted"),
    "completed": ("discharged",),
    "discharged": (),
    "aborted": (),
    "no_show": (),
}
VITALS = ("systolic", "diastolic", "heart_rate", "spo2")
DOSING = ("pre_checks", "started", "completed")  # any controlled-substance entry (drawn, given, wasted, corrected)
ENDED = ("aborted", "discharged")                # only a waste (witnessed) or a correction: the record closes late
AFTER_THE_END = ("wasted", "correction")


class RangeSchema(Schema):
    min = fields.Float(required=True)
    max = fields.Float(required=True)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data["min"] > data["max"]:
            raise ValidationError("min must not exceed max")


def _ranges() -> fields.Dict:
    return fields.Dict(keys=fields.String(validate=validate.OneOf(VITALS)), values=fields.Nested(RangeSchema),
                       required=True)


class AbortReasonSchema(Schema):
    chargeable = fields.Boolean(required=True, metadata={"description": "the patient's reason: billed as a late "
                                                                       "cancellation; else the dispatch-fee rule"})


class VisitRulesSchema(Schema):
    fasting_hours = fields.Dict(keys=fields.String(), values=fields.Float(validate=validate.Range(min=0, max=24)),
                                required=True, metadata={"description": "hours without food before each visit type"})
    escort_required = fields.Boolean(required=True)
    consent_reconfirmation_required = fields.Boolean(required=True)
    pregnancy_question_required = fields.Boolean(required=True)
    baseline_limits = _ranges()
    infusion_limits = _ranges()
    physiological_ranges = _ranges()
    vitals_every_minutes = fields.Integer(required=True, validate=validate.Range(min=1, max=60))
    abort_reasons = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[a-z_]+$")),
                                values=fields.Nested(AbortReasonSchema), required=True)

    @validates_schema
    def _checks_have_reasons(self, data: dict[str, Any], **_: Any) -> None:
        missing = set(PRE_CHECK_REASONS) - set(data["abort_reasons"])
        if missing:
            raise ValidationError(f"abort_reasons must include {sorted(missing)}")


PRE_CHECK_REASONS = ("not_fasted", "no_escort", "consent_not_reconfirmed", "possible_pregnancy",
                     "baseline_vitals_out_of_limits")


class StepRefused(Exception):
    """A step that breaks a visit rule; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def check_transition(state: str | None, step: str) -> None:
    """Raise ``StepRefused('illegal_transition')`` unless ``step`` may follow ``state``."""
    if step not in NEXT_STEPS.get(state, ()):
        allowed = ", ".join(NEXT_STEPS.get(state, ())) or "nothing: the visit is over"
        raise StepRefused("illegal_transition", f"after {state or 'booking'} comes {allowed}, not {step}")


def outside(reading: dict[str, float], ranges: dict[str, dict[str, float]]) -> list[str]:
    """The names of the readings outside their range, in a stable order."""
    return [name for name in VITALS if name in reading and name in ranges
            and not ranges[name]["min"] <= reading[name] <= ranges[name]["max"]]


def check_physiological(reading: dict[str, float], rules: dict[str, Any]) -> None:
    """Refuse a reading no living patient gives (a typo, a device fault): never stored."""
    impossible = outside(reading, rules["physiological_ranges"])
    if impossible:
        raise StepRefused("vitals_out_of_physiological_range",
                          f"{', '.join(impossible)} outside the physiological range: check the reading")


@dataclass(frozen=True)
class PreCheckOutcome:
    passed: bool
    failed: list[str]
    reason: str | None
    chargeable: bool


def evaluate_pre_checks(checks: dict[str, Any], visit_type: str, rules: dict[str, Any]) -> PreCheckOutcome:
    """The pre-dose gate: fasting long enough for the visit type, an escort, consent re-confirmed, the pregnancy
    question answered no, baseline vitals within limits. The first failed check gives the abort reason."""
    check_physiological(checks["baseline"], rules)
    failed = []
    if checks["fasting_hours"] < rules["fasting_hours"].get(visit_type, 0):
        failed.append("not_fasted")
    if rules["escort_required"] and not checks["escort_present"]:
        failed.append("no_escort")
    if rules["consent_reconfirmation_required"] and not checks["consent_reconfirmed"]:
        failed.append("consent_not_reconfirmed")
    if rules["pregnancy_question_required"] and checks["pregnancy_possible"] is not False:
        failed.append("possible_pregnancy")
    if outside(checks["baseline"], rules["baseline_limits"]):
        failed.append("baseline_vitals_out_of_limits")
    reason = failed[0] if failed else None
    chargeable = bool(reason) and rules["abort_reasons"][reason]["chargeable"]
    return PreCheckOutcome(passed=not failed, failed=failed, reason=reason, chargeable=chargeable)


def flag_vitals(reading: dict[str, float], rules: dict[str, Any]) -> list[str]:
    """Readings during the infusion outside the clinic's limits: stored, and flagged for the nurse to act on."""
    check_physiological(reading, rules)
    return outside(reading, rules["infusion_limits"])


def mg_per_kg(amount_mg: Decimal, weight_kg: Decimal | None) -> Decimal | None:
    """The dose per kilogram of the weight recorded at the pre-checks, to 3 decimals."""
    if not weight_kg:
        return None
    return (amount_mg / weight_kg).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def check_medication_entry(state: str | None, kind: str) -> None:
    """Which controlled-substance entries a visit's state takes: every kind from the pre-checks until the infusion
    is completed; after an abort or a discharge only a witnessed waste (a drug drawn, then the visit aborted) or a
    correction of an earlier entry. ``StepRefused('not_monitoring')`` before the pre-checks or after a no-show,
    ``StepRefused('visit_over')`` for a drug drawn or given after the visit ended."""
    if state in DOSING or (state in ENDED and kind in AFTER_THE_END):
        return
    if state in ENDED:
        raise StepRefused("visit_over", f"the visit is {state}: only a waste or a correction may be recorded now")
    raise StepRefused("not_monitoring", "medication is recorded from the pre-checks on")


@dataclass(frozen=True)
class ReadingTiming:
    late: bool
    overdue_by_minutes: int  # whole minutes past the due time, rounded up; 0 when on time


def next_vitals_due(state: str | None, started_at: datetime | None, taken: list[datetime],
                    every_minutes: int) -> datetime | None:
    """While the infusion runs, the next reading is due ``every_minutes`` after the latest of the infusion's start
    and the readings taken since; no reading is due before the start or after completion (None)."""
    if state != "started" or started_at is None:
        return None
    return max([started_at, *(at for at in taken if at >= started_at)]) + timedelta(minutes=every_minutes)


def reading_timing(state: str | None, started_at: datetime | None, earlier: list[datetime], taken_at: datetime,
                   every_minutes: int) -> ReadingTiming:
    """Whether an infusion reading came later than the interval after the one before it (or the start): due
    ``every_minutes`` after the latest of the start and the readings taken before it. Readings outside the
    infusion are never late."""
    due = next_vitals_due(state, started_at, [at for at in earlier if at <= taken_at], every_minutes)
    if due is None or taken_at <= due:
        return ReadingTiming(False, 0)
    return ReadingTiming(True, math.ceil((taken_at - due).total_seconds() / 60))
