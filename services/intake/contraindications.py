"""Contraindication rules as versioned data (``config/contraindications.yml``), evaluated on a patient's
latest answers, medications and allergies. Absolute rules decline; relative ones send the case to a clinician.
Every evaluation returns the rules that fired with the inputs that fired them and the rule-set version."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chassis.config import ConfigVersion

KINDS = ("absolute", "relative")


class _AnswerConditionSchema(Schema):
    instrument = fields.String(required=True)
    item = fields.String(required=True)
    at_least = fields.Integer()
    at_most = fields.Integer()

    @validates_schema
    def _one_bound(self, data: dict[str, Any], **_: object) -> None:
        if ("at_least" in data) == ("at_most" in data):
            raise ValidationError("give exactly one of at_least and at_most")


class ConditionSchema(Schema):
    answer = fields.Nested(_AnswerConditionSchema)
    medication_any = fields.List(fields.String(validate=validate.Length(min=1)), validate=validate.Length(min=1))
    allergy_any = fields.List(fields.String(validate=validate.Length(min=1)), validate=validate.Length(min=1))
    all = fields.List(fields.Nested(lambda: ConditionSchema()), validate=validate.Length(min=1))

    @validates_schema
    def _one_kind(self, data: dict[str, Any], **_: object) -> None:
        if len(data) != 1:
            raise ValidationError("a condition is exactly one of answer, medication_any, allergy_any, all")


class RuleSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_]{1,60}$"))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    clinician_text = fields.String(required=True)
    when = fields.Nested(ConditionSchema, required=True)


class _PatientTextsSchema(Schema):
    absolute = fields.String(required=True)
    relative = fields.String(required=True)


class ContraindicationRulesSchema(Schema):
    patient_texts = fields.Nested(_PatientTextsSchema, required=True)
    rules = fields.List(fields.Nested(RuleSchema), required=True, validate=validate.Length(min=1))

    @validates_schema
    def _unique(self, data: dict[str, Any], **_: object) -> None:
        codes = [rule["code"] for rule in data["rules"]]
        if len(codes) != len(set(codes)):
            raise ValidationError("rule codes must be unique", "rules")


def answers_read(rules: ConfigVersion) -> list[tuple[str, str, str]]:
    """(rule code, instrument, item) of every answer a rule set's conditions read."""
    def walk(code: str, condition: dict[str, Any]) -> list[tuple[str, str, str]]:
        if "answer" in condition:
            return [(code, condition["answer"]["instrument"], condition["answer"]["item"])]
        return [read for inner in condition.get("all", []) for read in walk(code, inner)]

    return [read for rule in rules["rules"] for read in walk(rule["code"], rule["when"])]


def unreadable_answers(rules: ConfigVersion, instruments: ConfigVersion) -> list[str]:
    """What a rule set reads that an instruments version does not ask before the review: a rule naming an unknown
    instrument or item (a typo) would never fire, silently turning off an exclusion."""
    asked = {form["code"]: {item["code"] for item in form["items"]} for form in instruments["instruments"]}
    required = set(instruments["required_before_review"])
    problems = []
    for code, form, item in answers_read(rules):
        if form not in asked:
            problems.append(f"rule {code} reads instrument {form!r}, which instruments {instruments.version} lacks")
        elif item not in asked[form]:
            problems.append(f"rule {code} reads item {item!r}, which {form} ({instruments.version}) lacks")
        elif form not in required:
            problems.append(f"rule {code} reads {form}, which instruments {instruments.version} does not require "
                            "before the review")
    return problems


@dataclass(frozen=True)
class Facts:
    """What the rules read: latest answers per instrument, current medication names, allergies."""

    answers: dict[str, dict[str, int]]
    medications: list[str] = field(default_factory=list)
    allergies: list[str] = field(default_factory=list)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _matches(condition: dict[str, Any], facts: Facts) -> dict[str, Any] | None:
    """The inputs that make ``condition`` hold, or None when it does not."""
    if "answer" in condition:
        wanted = condition["answer"]
        value = facts.answers.get(wanted["instrument"], {}).get(wanted["item"])
        if value is None:
            return None
        holds = value >= wanted["at_least"] if "at_least" in wanted else value <= wanted["at_most"]
        return {f"{wanted['instrument']}.{wanted['item']}": value} if holds else None
    if "medication_any" in condition or "allergy_any" in condition:
        key = "medications" if "medication_any" in condition else "allergies"
        listed = {name.lower() for name in condition.get("medication_any") or condition["allergy_any"]}
        given = facts.medications if key == "medications" else facts.allergies
        found = [name for name in given if _words(name) & listed]
        return {key: found} if found else None
    inputs: dict[str, Any] = {}
    for part in condition["all"]:
        matched = _matches(part, facts)
        if matched is None:
            return None
        inputs.update(matched)
    return inputs


@dataclass(frozen=True)
class ContraindicationDecision:
    rules_version: str
    fired: list[dict[str, Any]]

    @property
    def absolute(self) -> list[str]:
        return [rule["code"] for rule in self.fired if rule["kind"] == "absolute"]

    @property
    def relative(self) -> list[str]:
        return [rule["code"] for rule in self.fired if rule["kind"] == "relative"]

    @property
    def outcome(self) -> str:
        """``decline`` (an absolute rule fired) or ``review`` (a clinician decides, told of any relative rule)."""
        return "decline" if self.absolute else "review"


def evaluate(rules: ConfigVersion, facts: Facts) -> ContraindicationDecision:
    fired = []
    for rule in rules["rules"]:
        inputs = _matches(rule["when"], facts)
        if inputs is not None:
            fired.append({"code": rule["code"], "kind": rule["kind"], "inputs": inputs})
    return ContraindicationDecision(rules.version, fired)


def explained(fired: list[dict[str, Any]], rules: ConfigVersion, audience: str) -> list[dict[str, Any]]:
    """The fired rules in words: for clinicians the rules and their inputs; for patients one sentence per kind
    (no condition, diagnosis or medication named)."""
    if audience == "clinician":
        texts = {rule["code"]: rule["clinician_text"] for rule in rules["rules"]}
        return [{**rule, "text": texts.get(rule["code"], rule["code"])} for rule in fired]
    kinds = [kind for kind in KINDS if any(rule["kind"] == kind for rule in fired)]
    return [{"kind": kind, "text": " ".join(rules["patient_texts"][kind].split())} for kind in kinds[:1]]
