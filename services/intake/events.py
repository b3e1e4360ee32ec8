"""Events intake emits: the published contract, one schema per type and version."""

from marshmallow import Schema, fields

from chassis.events import event_schema


@event_schema("patient.registered", version=1)
class PatientRegistered(Schema):
    """Contact details notifications needs to reach the patient; no health data."""

    patient_id = fields.String(required=True)
    first_name = fields.String(required=True)
    email = fields.String(required=True)
    phone = fields.String(required=True)
    time_zone = fields.String(required=True)
    sms_opt_in = fields.Boolean(required=True)
