"""Public routes that scheduling answers, beyond the foundation's in ``gateway.endpoints``.

Each route is a ``Route`` in ``ROUTES`` (which ``gateway.endpoints.ROUTES`` includes, so OpenAPI, roles,
idempotency, the PHI audit and the authorisation tests cover it) and one ``@api`` handler in
``SchedulingApi``, a mixin of ``gateway.service.GatewayService``, which gives it ``self.scheduling`` and the other
services' RPC proxies.
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chassis.service import plausible_instant
from gateway.access import require_appointment_access, require_patient_access
from gateway.api import ApiRequest, Forbidden, api, to_json
from gateway.billing_api import QuoteSchema
from gateway.pagination import PageQuerySchema
from gateway.routes import Route
from gateway.schemas import AppointmentSchema, HoldRequestSchema, NurseHoursSchema, NurseSchema

UPSTREAM = (502, 503, 504)
_ID = validate.Length(min=1, max=100)


class AvailabilityQuerySchema(Schema):
    patient_id = fields.String(required=True, validate=_ID)
    visit_type = fields.String(required=True, validate=validate.Length(min=1, max=50),
                               metadata={"example": "iv-mood"})
    from_ = fields.Date(required=True, data_key="from", metadata={"description": "first local date (patient's)"})
    to = fields.Date(required=True, metadata={"description": "last local date, included"})
    nurse_id = fields.String(validate=_ID)

    @validates_schema
    def _in_order(self, data: dict[str, Any], **_: Any) -> None:
        if data["to"] < data["from_"]:
            raise ValidationError("must not come before from", "to")


class FreeStartSchema(Schema):
    start_at = fields.DateTime(required=True)
    end_at = fields.DateTime(required=True)
    local_start = fields.String(required=True, metadata={"description": "start in the patient's time zone"})
    nurses_free = fields.Integer(required=True, metadata={"description": "how many nurses could take it"})


class AvailabilitySchema(Schema):
    patient_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    time_zone = fields.String(required=True)
    calendar_version = fields.String(required=True)
    slots = fields.List(fields.Nested(FreeStartSchema), required=True)


class HoldSchema(Schema):
    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    nurse_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    start_at = fields.DateTime(required=True)
    end_at = fields.DateTime(required=True)
    time_zone = fields.String(required=True)
    local_start = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["held", "paid", "booked", "failed", "expired"]))
    expires_at = fields.DateTime(required=True)
    quote = fields.Nested(QuoteSchema, required=True)
    appointment_id = fields.String(allow_none=True, metadata={"description": "once booked"})
    failure_reason = fields.String()
    calendar_version = fields.String(required=True)


class RescheduleSchema(Schema):
    start_at = fields.AwareDateTime(required=True, validate=plausible_instant,
                                    metadata={"description": "the new start: UTC instant or offset time"})
    nurse_id = fields.String(validate=_ID, metadata={"description": "another nurse (default: the same if free)"})


class CancellationSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class ScheduleQuerySchema(Schema):
    date = fields.Date(required=True, metadata={"description": "a local date of the nurse"})


class ShiftTimesSchema(Schema):
    start_at = fields.DateTime(required=True)
    end_at = fields.DateTime(required=True)


class ScheduledVisitSchema(Schema):
    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    status = fields.String(required=True)
    start_at = fields.DateTime(required=True)
    end_at = fields.DateTime(required=True)
    time_zone = fields.String(required=True)
    local_start = fields.String(required=True)
    hold_id = fields.String()


class NurseScheduleSchema(Schema):
    nurse_id = fields.String(required=True)
    date = fields.Date(required=True)
    time_zone = fields.String(required=True)
    shifts = fields.List(fields.Nested(ShiftTimesSchema), required=True)
    visits = fields.List(fields.Nested(ScheduledVisitSchema), required=True)


class VitalsSchema(Schema):
    systolic = fields.Float(required=True, metadata={"description": "mmHg"})
    diastolic = fields.Float(required=True, metadata={"description": "mmHg"})
    heart_rate = fields.Float(required=True, metadata={"description": "beats per minute"})
    spo2 = fields.Float(required=True, metadata={"description": "oxygen saturation, %"})
    taken_at = fields.AwareDateTime(validate=plausible_instant)


class RecordedVitalsSchema(VitalsSchema):
    taken_at = fields.DateTime(required=True)
    recorded_by = fields.String(required=True)
    flags = fields.List(fields.String(), required=True, metadata={"description": "readings outside the limits"})
    late_reading = fields.Boolean(metadata={"description": "taken later than the rules' interval after the reading "
                                                           "before it (or the infusion's start)"})
    overdue_by_minutes = fields.Integer(metadata={"description": "whole minutes past its due time (0: on time)"})
    rules_version = fields.String(required=True)


class PreChecksSchema(Schema):
    fasting_hours = fields.Float(required=True, validate=validate.Range(min=0, max=72))
    escort_present = fields.Boolean(required=True)
    consent_reconfirmed = fields.Boolean(required=True)
    pregnancy_possible = fields.Boolean(required=True, allow_none=True)
    weight_kg = fields.Float(required=True, validate=validate.Range(min=20, max=400))
    baseline = fields.Nested(VitalsSchema, required=True)


class VisitStepSchema(Schema):
    step = fields.String(required=True, validate=validate.OneOf(
        ["en_route", "arrived", "pre_checks", "started", "completed", "discharged", "aborted", "no_show"]))
    arrival_from = fields.AwareDateTime(validate=plausible_instant, metadata={"description": "en_route"})
    arrival_to = fields.AwareDateTime(validate=plausible_instant, metadata={"description": "en_route"})
    patient_late_minutes = fields.Integer(validate=validate.Range(min=0, max=600), metadata={"description": "arrived"})
    pre_checks = fields.Nested(PreChecksSchema, metadata={"description": "pre_checks"})
    infusion_minutes = fields.Integer(validate=validate.Range(min=1, max=720), metadata={"description": "completed"})
    escort_present = fields.Boolean(metadata={"description": "discharged"})
    post_care_instructions_given = fields.Boolean(metadata={"description": "discharged"})
    reason = fields.String(validate=validate.Length(min=1, max=50), metadata={"description": "aborted"})
    note = fields.String(validate=validate.Length(max=1000))


class VisitSchema(Schema):
    appointment_id = fields.String(required=True)
    status = fields.String(required=True)
    state = fields.String(allow_none=True)
    abort_reason = fields.String(allow_none=True)
    chargeable = fields.Boolean(allow_none=True)
    infusion_minutes = fields.Integer(allow_none=True)
    patient_late_minutes = fields.Integer(allow_none=True, metadata={"description": "noted on arrival"})
    next_vitals_due_at = fields.DateTime(allow_none=True,
                                         metadata={"description": "while the infusion runs: when the next reading "
                                                                  "is due"})
    steps = fields.List(fields.Dict(), required=True)
    vitals = fields.List(fields.Nested(RecordedVitalsSchema), required=True)


class MedicationEntrySchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["drawn", "given", "wasted", "correction"]))
    substance = fields.String(validate=validate.Length(min=1, max=50), metadata={"example": "ketamine"})
    lot_number = fields.String(required=True, validate=validate.Length(min=1, max=50))
    amount_mg = fields.Decimal(required=True, places=3, as_string=True, metadata={"example": "35"})
    witness = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "for a waste"})
    corrects_entry_id = fields.String(validate=_ID, metadata={"description": "for a correction"})
    note = fields.String(validate=validate.Length(max=1000))


class ControlledSubstanceEntrySchema(MedicationEntrySchema):
    id = fields.String(required=True)
    appointment_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    nurse_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    mg_per_kg = fields.String(allow_none=True, metadata={"description": "for a dose given"})
    weight_kg = fields.Float(allow_none=True)
    recorded_at = fields.DateTime(required=True)
    recorded_by = fields.String(required=True)


class LogQuerySchema(PageQuerySchema):
    from_ = fields.Date(required=True, data_key="from", metadata={"description": "first UTC date"})
    to = fields.Date(required=True, metadata={"description": "last UTC date, included"})


class WaitlistRequestSchema(AvailabilityQuerySchema):
    """Availability's question, asked to wait: a time that fits between the dates is offered as a hold."""


class WaitlistOfferSchema(Schema):
    slot = fields.String(required=True)
    hold_id = fields.String(required=True)
    offered_at = fields.DateTime(required=True)


class WaitlistEntrySchema(Schema):
    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    visit_type = fields.String(required=True)
    from_ = fields.Date(required=True, data_key="from")
    to = fields.Date(required=True)
    nurse_id = fields.String(allow_none=True)
    time_zone = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["waiting", "offered"]))
    created_at = fields.DateTime(required=True)
    offers = fields.List(fields.Nested(WaitlistOfferSchema), required=True,
                         metadata={"description": "each an offered hold (see GET /v1/holds/{id})"})


class SessionSchema(Schema):
    appointment_id = fields.String(required=True)
    start_at = fields.DateTime(required=True)
    status = fields.String(required=True)


class NextSessionSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["session", "booster"]))
    number = fields.Integer(required=True)
    from_ = fields.Date(required=True, data_key="from")
    to = fields.Date(required=True)


class SeriesSchema(Schema):
    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    protocol = fields.String(required=True)
    protocol_code = fields.String(required=True, metadata={"description": "as the clinician's clearance named it"})
    visit_type = fields.String(required=True)
    planned_sessions = fields.Integer(required=True)
    protocols_version = fields.String(required=True)
    sessions = fields.List(fields.Nested(SessionSchema), required=True)
    next = fields.Nested(NextSessionSchema, required=True,
                         metadata={"description": "the dates to ask availability for, then book with series_id"})


class SeriesListSchema(Schema):
    items = fields.List(fields.Nested(SeriesSchema), required=True)


class SeriesBookingRequestSchema(Schema):
    start_ats = fields.List(fields.AwareDateTime(validate=plausible_instant), required=True,
                            validate=validate.Length(min=1, max=20),
                            metadata={"description": "one start per session (UTC instants or offset times), each "
                                                     "inside its session's dates as if booked one by one"})
    nurse_id = fields.String(validate=_ID, metadata={"description": "one nurse for every session (default: any)"})


class SeriesBookingSchema(Schema):
    id = fields.String(required=True)
    patient_id = fields.String(required=True)
    series_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["booked"]))
    appointments = fields.List(fields.Nested(AppointmentSchema), required=True,
                               metadata={"description": "the sessions booked, in date order"})


GET_AVAILABILITY = Route(
    "GET", "/v1/availability", "getAvailability",
    "Free visit start times for a patient over a range of their local dates, across every nurse who may visit them "
    "(licensed in their state, serving their address, working then, with time to travel there)", "appointments",
    roles=("patient", "admin"), query_schema=AvailabilityQuerySchema, response_schema=AvailabilitySchema,
    errors=(404, 422, *UPSTREAM), phi_resource="patient", phi_action="read")
PLACE_HOLD = Route(
    "POST", "/v1/holds", "placeHold",
    "Hold a visit for a few minutes while the deposit is paid; the answer carries billing's quote", "appointments",
    roles=("patient", "admin"), request_schema=HoldRequestSchema, response_schema=HoldSchema,
    response_status=201, errors=(404, 409, 422, *UPSTREAM), phi_resource="hold", idempotent=True)
GET_HOLD = Route(
    "GET", "/v1/holds/{hold_id}", "getHold", "A hold: held, booked (with the appointment id), failed or expired",
    "appointments", roles=("patient", "admin"), response_schema=HoldSchema, errors=(404, *UPSTREAM),
    phi_resource="hold")
RESCHEDULE_APPOINTMENT = Route(
    "POST", "/v1/appointments/{appointment_id}/reschedule", "rescheduleAppointment",
    "Move a booked visit: the new time is claimed and the old one released in one step", "appointments",
    roles=("patient", "admin"), request_schema=RescheduleSchema, response_schema=AppointmentSchema,
    errors=(404, 409, 422, *UPSTREAM), phi_resource="appointment", phi_action="update", idempotent=True)
CANCEL_APPOINTMENT = Route(
    "POST", "/v1/appointments/{appointment_id}/cancel", "cancelAppointment",
    "Cancel a booked visit (by the patient, or by the clinic when staff cancel); fees follow billing's policy",
    "appointments", roles=("patient", "admin"), request_schema=CancellationSchema,
    response_schema=AppointmentSchema, errors=(404, 409, *UPSTREAM), phi_resource="appointment",
    phi_action="update", idempotent=True)
JOIN_WAITLIST = Route(
    "POST", "/v1/waitlist", "joinWaitlist",
    "Wait for an earlier visit: a time given up that fits is offered as a hold (waitlist.offered)", "appointments",
    roles=("patient", "admin"), request_schema=WaitlistRequestSchema, response_schema=WaitlistEntrySchema,
    response_status=201, errors=(404, 422, *UPSTREAM), phi_resource="waitlist", idempotent=True)
GET_PATIENT_SERIES = Route(
    "GET", "/v1/patients/{patient_id}/series", "getPatientSeries",
    "A patient's treatment series: the protocol, sessions so far, and the dates of the next session or booster",
    "appointments", roles=("patient", "clinician", "admin"), response_schema=SeriesListSchema,
    errors=(404, *UPSTREAM), phi_resource="series", phi_action="list")
BOOK_SERIES_SESSIONS = Route(
    "POST", "/v1/patients/{patient_id}/series/{series_id}/bookings", "bookSeriesSessions",
    "Book several sessions of a series at once, all or nothing: if one cannot be had, none is booked and the 409 "
    "names it", "appointments", roles=("patient", "admin"), request_schema=SeriesBookingRequestSchema,
    response_schema=SeriesBookingSchema, response_status=201, errors=(404, 409, 422, *UPSTREAM),
    phi_resource="series", idempotent=True)
RECORD_VISIT_STEP = Route(
    "POST", "/v1/visits/{visit_id}/events", "recordVisitStep",
    "The assigned nurse records the visit's next step (the visit id is the appointment id); illegal orders are 409s",
    "visits", roles=("nurse", "admin"), request_schema=VisitStepSchema, response_schema=VisitSchema,
    errors=(404, 409, 422, *UPSTREAM), phi_resource="visit", phi_action="update", idempotent=True)
RECORD_VITALS = Route(
    "POST", "/v1/visits/{visit_id}/vitals", "recordVitals",
    "Vitals during the visit: flagged outside the clinic's limits, refused outside any physiological range",
    "visits", roles=("nurse", "admin"), request_schema=VitalsSchema, response_schema=RecordedVitalsSchema,
    response_status=201, errors=(404, 409, 422, *UPSTREAM), phi_resource="visit", phi_action="update")
RECORD_MEDICATION = Route(
    "POST", "/v1/visits/{visit_id}/medication", "recordMedication",
    "A controlled-substance entry (drawn, given, wasted with a witness, or a correction): append-only",
    "visits", roles=("nurse", "admin"), request_schema=MedicationEntrySchema,
    response_schema=ControlledSubstanceEntrySchema, response_status=201, errors=(404, 409, 422, *UPSTREAM),
    phi_resource="controlled_substance", idempotent=True)
LIST_CONTROLLED_SUBSTANCES = Route(
    "GET", "/v1/controlled-substances", "listControlledSubstances",
    "The controlled-substance record of a date range, oldest first, for the clinic's records", "visits",
    roles=("admin",), query_schema=LogQuerySchema, response_schema=ControlledSubstanceEntrySchema, many=True,
    errors=(422, *UPSTREAM), phi_resource="controlled_substance")
PUT_NURSE_HOURS = Route(
    "PUT", "/v1/nurses/{nurse_id}/hours", "putNurseHours",
    "Replace a nurse's weekly working hours and exceptions (days off, extra shifts)", "nurses", roles=("admin",),
    request_schema=NurseHoursSchema, response_schema=NurseSchema, errors=(404, *UPSTREAM))
GET_NURSE_SCHEDULE = Route(
    "GET", "/v1/nurses/{nurse_id}/schedule", "getNurseSchedule",
    "A nurse's working hours and visits (holds included) on one of their local dates", "nurses",
    roles=("nurse", "admin"), query_schema=ScheduleQuerySchema, response_schema=NurseScheduleSchema,
    errors=(404, *UPSTREAM), phi_resource="appointment", phi_action="list")

ROUTES: tuple[Route, ...] = (GET_AVAILABILITY, PLACE_HOLD, GET_HOLD, RESCHEDULE_APPOINTMENT, CANCEL_APPOINTMENT,
                             JOIN_WAITLIST, GET_PATIENT_SERIES, BOOK_SERIES_SESSIONS, RECORD_VISIT_STEP,
                             RECORD_VITALS, RECORD_MEDICATION, LIST_CONTROLLED_SUBSTANCES, PUT_NURSE_HOURS,
                             GET_NURSE_SCHEDULE)


class SchedulingApi:
    """Handlers of ``ROUTES``: check who may see which record (``gateway.access``), ask scheduling."""

    scheduling: Any
    intake: Any

    @api(GET_AVAILABILITY)
    def get_availability(self, request: ApiRequest) -> dict[str, Any]:
        patient_id = request.query["patient_id"]
        require_patient_access(request, patient_id, self.intake)
        request.resource_id = patient_id
        return self.scheduling.availability(_json(AvailabilityQuerySchema().dump(request.query)))

    @api(PLACE_HOLD)
    def place_hold(self, request: ApiRequest) -> dict[str, Any]:
        require_patient_access(request, request.body["patient_id"], self.intake)
        hold = self.scheduling.place_hold(_json(request.body))
        request.resource_id = hold["id"]
        return hold

    @api(GET_HOLD)
    def get_hold(self, request: ApiRequest, hold_id: str) -> dict[str, Any]:
        hold = self.scheduling.get_hold(hold_id)
        require_patient_access(request, hold["patient_id"], self.intake)
        return hold

    @api(RESCHEDULE_APPOINTMENT)
    def reschedule_appointment(self, request: ApiRequest, appointment_id: str) -> dict[str, Any]:
        require_appointment_access(request, self.scheduling.get_appointment(appointment_id), self.intake)
        return self.scheduling.reschedule_appointment(appointment_id, _json(request.body))

    @api(CANCEL_APPOINTMENT)
    def cancel_appointment(self, request: ApiRequest, appointment_id: str) -> dict[str, Any]:
        require_appointment_access(request, self.scheduling.get_appointment(appointment_id), self.intake)
        by = "patient" if request.role == "patient" else "clinic"
        return self.scheduling.cancel_appointment(appointment_id, {"by": by, "reason": request.body["reason"]})

    @api(JOIN_WAITLIST)
    def join_waitlist(self, request: ApiRequest) -> dict[str, Any]:
        require_patient_access(request, request.body["patient_id"], self.intake)
        entry = self.scheduling.join_waitlist(_json(WaitlistRequestSchema().dump(request.body)))
        request.resource_id = entry["id"]
        return entry

    @api(GET_PATIENT_SERIES)
    def get_patient_series(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return {"items": self.scheduling.patient_series(patient_id)}

    @api(BOOK_SERIES_SESSIONS)
    def book_series_sessions(self, request: ApiRequest, patient_id: str, series_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        booking = self.scheduling.book_series_sessions(patient_id, series_id, _json(request.body))
        request.resource_id = booking["id"]
        return booking

    @api(RECORD_VISIT_STEP)
    def record_visit_step(self, request: ApiRequest, visit_id: str) -> dict[str, Any]:
        return self.scheduling.record_visit_step(visit_id, _json(request.body), _actor(request))

    @api(RECORD_VITALS)
    def record_vitals(self, request: ApiRequest, visit_id: str) -> dict[str, Any]:
        return self.scheduling.record_vitals(visit_id, _json(request.body), _actor(request))

    @api(RECORD_MEDICATION)
    def record_medication(self, request: ApiRequest, visit_id: str) -> dict[str, Any]:
        body = _json(MedicationEntrySchema().dump(request.body))  # the amount as a decimal string
        entry = self.scheduling.record_medication(visit_id, body, _actor(request))
        request.resource_id = entry["id"]
        return entry

    @api(LIST_CONTROLLED_SUBSTANCES)
    def list_controlled_substances(self, request: ApiRequest) -> dict[str, Any]:
        query = request.query
        return self.scheduling.controlled_substance_log(
            {"from": query["from_"].isoformat(), "to": query["to"].isoformat()}, cursor=query.get("cursor"),
            limit=query.get("limit"))

    @api(PUT_NURSE_HOURS)
    def put_nurse_hours(self, request: ApiRequest, nurse_id: str) -> dict[str, Any]:
        return self.scheduling.set_nurse_hours(nurse_id, _json(request.body))

    @api(GET_NURSE_SCHEDULE)
    def get_nurse_schedule(self, request: ApiRequest, nurse_id: str) -> dict[str, Any]:
        if request.role == "nurse" and request.subject != nurse_id:
            raise Forbidden("Nurses may only see their own schedule.")
        return self.scheduling.nurse_schedule(nurse_id, request.query["date"].isoformat())


def _actor(request: ApiRequest) -> dict[str, str]:
    """Who records a visit (scheduling checks that a nurse is the assigned one)."""
    return {"role": request.role, "id": request.subject}


def _json(body: dict[str, Any]) -> dict[str, Any]:
    """A validated body in JSON types (dates as ISO strings) for the RPC call."""
    return json.loads(to_json(body))
