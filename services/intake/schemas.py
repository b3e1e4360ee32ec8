"""What intake accepts and returns over RPC."""

from __future__ import annotations

from zoneinfo import available_timezones

from marshmallow import Schema, ValidationError, fields, validate, validates

from chassis.service import date_in_the_past

_TIME_ZONES = frozenset(available_timezones())


class AddressSchema(Schema):
    line1 = fields.String(required=True, validate=validate.Length(min=1, max=200))
    line2 = fields.String(validate=validate.Length(max=200))
    city = fields.String(required=True, validate=validate.Length(min=1, max=100))
    state = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="two capital letters"))
    postal_code = fields.String(required=True, validate=validate.Regexp(r"^\d{5}(-\d{4})?$"))


class PatientRegistrationSchema(Schema):
    first_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    last_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    phone = fields.String(required=True,
                          validate=validate.Regexp(r"^\+[1-9]\d{7,14}$", error="E.164, e.g. +13035550100"))
    date_of_birth = fields.Date(required=True, validate=date_in_the_past)
    address = fields.Nested(AddressSchema, required=True)
    time_zone = fields.String(required=True)
    sms_opt_in = fields.Boolean(load_default=False)

    @validates("time_zone")
    def _known_time_zone(self, value: str, **_: object) -> None:
        if value not in _TIME_ZONES:
            raise ValidationError("unknown IANA time zone")


class PatientSchema(PatientRegistrationSchema):
    id = fields.String(attribute="_id")
    status = fields.String()
    registered_at = fields.AwareDateTime()
    clinician_id = fields.String(allow_none=True)


class ClinicianAssignmentSchema(Schema):
    clinician_id = fields.String(required=True, validate=validate.Length(min=1, max=100))


class EligibilitySchema(Schema):
    patient_id = fields.String()
    eligible = fields.Boolean()
    reasons = fields.List(fields.String())
    rules_version = fields.String()
    state = fields.String()
    postal_code = fields.String()
    time_zone = fields.String()
