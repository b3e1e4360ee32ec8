"""The clinician's decision: protocols and decline reasons from configuration, and a treatment plan checked
against the chosen protocol (weight-based dose in mg/kg within its range, planned sessions within its bounds)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chassis.config import ConfigVersion
from chassis.errors import InvalidInput


class _DoseRangeSchema(Schema):
    min = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    max = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))


class ProtocolSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]{1,40}$"))
    name = fields.String(required=True)
    visit_type = fields.String(required=True)
    dose_mg_per_kg = fields.Nested(_DoseRangeSchema, required=True)
    infusion_minutes = fields.Integer(required=True, validate=validate.Range(min=1, max=600))
    planned_sessions = fields.Integer(required=True, validate=validate.Range(min=1, max=50))
    min_sessions = fields.Integer(required=True, validate=validate.Range(min=1, max=50))
    max_sessions = fields.Integer(required=True, validate=validate.Range(min=1, max=50))

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: object) -> None:
        if data["dose_mg_per_kg"]["min"] > data["dose_mg_per_kg"]["max"]:
            raise ValidationError("dose min above max", "dose_mg_per_kg")
        if not data["min_sessions"] <= data["planned_sessions"] <= data["max_sessions"]:
            raise ValidationError("planned_sessions must lie between min_sessions and max_sessions")


class ProtocolsSchema(Schema):
    protocols = fields.List(fields.Nested(ProtocolSchema), required=True, validate=validate.Length(min=1))
    decline_reasons = fields.List(fields.String(validate=validate.Regexp(r"^[a-z0-9_]{1,60}$")), required=True,
                                  validate=validate.Length(min=1))


class _PlanSchema(Schema):
    protocol_code = fields.String(required=True, validate=validate.Length(min=1, max=40))
    dose_mg_per_kg = fields.Float(required=True, allow_nan=False)
    planned_sessions = fields.Integer(validate=validate.Range(min=1, max=50))


class ReviewDecisionSchema(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "decline"]))
    plan = fields.Nested(_PlanSchema)
    reason_code = fields.String(validate=validate.Length(min=1, max=60))
    note = fields.String(validate=validate.Length(max=2000))

    @validates_schema
    def _complete(self, data: dict[str, Any], **_: object) -> None:
        if data["decision"] == "approve" and "plan" not in data:
            raise ValidationError("an approval needs a treatment plan", "plan")
        if data["decision"] == "decline" and "reason_code" not in data:
            raise ValidationError("a decline needs a reason", "reason_code")


def treatment_plan(plan: dict[str, Any], protocols: ConfigVersion, weight_kg: float) -> dict[str, Any]:
    """The plan as stored: the protocol's terms, the dose for this patient's weight, the protocols version."""
    protocol = next((p for p in protocols["protocols"] if p["code"] == plan["protocol_code"]), None)
    if protocol is None:
        known = [p["code"] for p in protocols["protocols"]]
        raise InvalidInput("unknown protocol", errors={"plan": {"protocol_code": [f"Must be one of {known}."]}})
    dose = protocol["dose_mg_per_kg"]
    if not dose["min"] <= plan["dose_mg_per_kg"] <= dose["max"]:
        raise InvalidInput("dose outside the protocol's range", errors={"plan": {"dose_mg_per_kg": [
            f"Must be between {dose['min']} and {dose['max']} mg/kg for {protocol['code']}."]}})
    sessions = plan.get("planned_sessions", protocol["planned_sessions"])
    if not protocol["min_sessions"] <= sessions <= protocol["max_sessions"]:
        raise InvalidInput("sessions outside the protocol's bounds", errors={"plan": {"planned_sessions": [
            f"Must be between {protocol['min_sessions']} and {protocol['max_sessions']} for {protocol['code']}."]}})
    return {"protocol_code": protocol["code"], "protocol_name": protocol["name"],
            "visit_type": protocol["visit_type"], "infusion_minutes": protocol["infusion_minutes"],
            "dose_mg_per_kg": plan["dose_mg_per_kg"], "weight_kg": weight_kg,
            "dose_mg": round(plan["dose_mg_per_kg"] * weight_kg, 1), "planned_sessions": sessions,
            "protocols_version": protocols.version}


#: Decline reasons other services may learn as they are: none of them is a health fact. Any other reason (a
#: contraindication, clinical judgement, a suicide risk, or one a clinic adds) leaves intake as ``clinical``.
SHAREABLE_DECLINE_REASONS = frozenset({"incomplete_information", "patient_withdrew"})


def shared_decline_reason(reason_code: str) -> str:
    """The ``reason_code`` of ``patient.declined``: the reason itself when it says nothing of health, else
    ``clinical`` (the clinical reason stays in intake's record of the review)."""
    return reason_code if reason_code in SHAREABLE_DECLINE_REASONS else "clinical"


def checked_decline_reason(reason_code: str, protocols: ConfigVersion) -> str:
    if reason_code not in protocols["decline_reasons"]:
        raise InvalidInput("unknown decline reason",
                           errors={"reason_code": [f"Must be one of {protocols['decline_reasons']}."]})
    return reason_code
