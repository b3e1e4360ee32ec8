"""Screening instruments as data, scored by their published rules (plain Python, no Nameko).

An instrument (``config/instruments.yml``) lists its items, the answer range, how it is scored (the sum
of the items, or not at all), its severity bands and optional cut-off, and its risk items: an answer at or
above ``at_least`` on a risk item means a clinician must see the patient urgently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chassis.config import ConfigVersion
from chassis.errors import InvalidInput, NotFound

SCORINGS = ("sum", "none")


class UnknownInstrument(NotFound):
    code = "instrument_not_found"


class _ItemSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_]{1,40}$"))
    text = fields.String(required=True, validate=validate.Length(min=1, max=500))


class _AnswerRangeSchema(Schema):
    min = fields.Integer(required=True, validate=validate.Range(min=0))
    max = fields.Integer(required=True, validate=validate.Range(min=1, max=100))
    labels = fields.List(fields.String(), load_default=list)


class _BandSchema(Schema):
    min = fields.Integer(required=True)
    max = fields.Integer(required=True)
    label = fields.String(required=True)


class _CutOffSchema(Schema):
    score = fields.Integer(required=True)
    label = fields.String(required=True)


class _RiskItemSchema(Schema):
    item = fields.String(required=True)
    at_least = fields.Integer(required=True)


class InstrumentSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]{1,40}$"))
    title = fields.String(required=True)
    instructions = fields.String(required=True)
    answers = fields.Nested(_AnswerRangeSchema, required=True)
    scoring = fields.String(required=True, validate=validate.OneOf(SCORINGS))
    items = fields.List(fields.Nested(_ItemSchema), required=True, validate=validate.Length(min=1))
    bands = fields.List(fields.Nested(_BandSchema), load_default=list)
    cut_off = fields.Nested(_CutOffSchema, load_default=None, allow_none=True)
    risk_items = fields.List(fields.Nested(_RiskItemSchema), load_default=list)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: object) -> None:
        codes = [item["code"] for item in data["items"]]
        if len(codes) != len(set(codes)):
            raise ValidationError("item codes must be unique", "items")
        low, high = data["answers"]["min"], data["answers"]["max"]
        if low >= high:
            raise ValidationError("min must be below max", "answers")
        labels = data["answers"]["labels"]
        if labels and len(labels) != high - low + 1:
            raise ValidationError("one label per possible answer, or none", "answers")
        if data["scoring"] == "none" and (data["bands"] or data["cut_off"]):
            raise ValidationError("an unscored instrument has no bands or cut-off", "bands")
        if data["bands"]:
            expected = low * len(codes)
            for band in data["bands"]:
                if band["min"] != expected or band["max"] < band["min"]:
                    raise ValidationError("bands must cover every total, in order, without gaps", "bands")
                expected = band["max"] + 1
            if expected != high * len(codes) + 1:
                raise ValidationError("bands must end at the highest possible total", "bands")
        for risk in data["risk_items"]:
            if risk["item"] not in codes:
                raise ValidationError(f"risk item {risk['item']} is not an item", "risk_items")


class _CrisisResourceSchema(Schema):
    name = fields.String(required=True)
    contact = fields.String(required=True)
    text = fields.String(required=True)


class InstrumentsSchema(Schema):
    instruments = fields.List(fields.Nested(InstrumentSchema), required=True, validate=validate.Length(min=1))
    required_before_review = fields.List(fields.String(), required=True)
    crisis_resources = fields.List(fields.Nested(_CrisisResourceSchema), required=True,
                                   validate=validate.Length(min=1))

    @validates_schema
    def _known(self, data: dict[str, Any], **_: object) -> None:
        codes = [instrument["code"] for instrument in data["instruments"]]
        if len(codes) != len(set(codes)):
            raise ValidationError("instrument codes must be unique", "instruments")
        unknown = set(data["required_before_review"]) - set(codes)
        if unknown:
            raise ValidationError(f"unknown instruments {sorted(unknown)}", "required_before_review")


@dataclass(frozen=True)
class Score:
    total: int | None
    band: str | None
    cut_off_met: bool | None
    risk_items: list[str]

    @property
    def risk(self) -> bool:
        return bool(self.risk_items)


def instrument(instruments: ConfigVersion, code: str) -> dict[str, Any]:
    for candidate in instruments["instruments"]:
        if candidate["code"] == code:
            return candidate
    raise UnknownInstrument(f"no screening instrument {code!r}", instrument=code, errors={
        "instrument": [f"Unknown instrument {code!r}: the instruments in force are listed by GET /v1/questionnaires."]})


def checked_answers(instrument: dict[str, Any], answers: Any) -> dict[str, int]:
    """The answers if every item is answered within the range; ``InvalidInput`` naming each bad item if not."""
    if not isinstance(answers, dict):
        raise InvalidInput("answers must be an object of item code to answer",
                           errors={"answers": ["Must be an object of item code to answer."]})
    low, high = instrument["answers"]["min"], instrument["answers"]["max"]
    codes = [item["code"] for item in instrument["items"]]
    problems: dict[str, list[str]] = {}
    for code in codes:
        value = answers.get(code)
        if value is None:
            problems[code] = ["Missing answer: every item must be answered."]
        elif isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems[code] = [f"Must be a whole number from {low} to {high}."]
    for code in answers:
        if code not in codes:
            problems[str(code)] = [f"Not an item of {instrument['code']}."]
    if problems:
        raise InvalidInput(f"the {instrument['code']} answers are incomplete or out of range",
                           errors={"answers": problems})
    return {code: answers[code] for code in codes}


def score(instrument: dict[str, Any], answers: dict[str, int]) -> Score:
    """Score complete, checked answers by the instrument's rule."""
    risk_items = [risk["item"] for risk in instrument["risk_items"] if answers[risk["item"]] >= risk["at_least"]]
    if instrument["scoring"] == "none":
        return Score(None, None, None, risk_items)
    total = sum(answers.values())
    band = next((b["label"] for b in instrument["bands"] if b["min"] <= total <= b["max"]), None)
    cut_off = instrument["cut_off"]
    return Score(total, band, None if cut_off is None else total >= cut_off["score"], risk_items)


def latest_answers(screenings: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Each instrument's most recent answers (the history is kept in submission order)."""
    latest: dict[str, dict[str, int]] = {}
    for submitted in screenings:
        latest[submitted["instrument"]] = submitted["answers"]
    return latest


def screening_complete(screenings: list[dict[str, Any]], instruments: ConfigVersion) -> bool:
    submitted = {s["instrument"] for s in screenings}
    return set(instruments["required_before_review"]) <= submitted
