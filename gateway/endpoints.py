"""Every operation of the public API, in one table: roles, schemas, PHI audit, idempotency.

``gateway.service`` binds one handler to each route; ``/openapi.json`` is built from this table; the
authorisation tests walk it, so a new route cannot escape them.
"""

from __future__ import annotations

from gateway import billing_api, intake_api, notifications_api, scheduling_api
from gateway.pagination import PageQuerySchema
from gateway.routes import Route
from gateway.schemas import (
    AppointmentQuerySchema,
    AppointmentSchema,
    AuditEntrySchema,
    AuditQuerySchema,
    BookingRequestSchema,
    ClinicianAssignmentSchema,
    HealthSchema,
    InvoiceQuerySchema,
    InvoiceSchema,
    MessageSchema,
    NurseSchema,
    NurseUpdateSchema,
    PatientRegistrationSchema,
    PatientSchema,
)

STAFF = ("clinician", "admin")
UPSTREAM = (502, 503, 504)

HEALTH = Route("GET", "/health", "health", "Liveness: the broker and the gateway's store answer", "operations",
               auth="none", response_schema=HealthSchema, errors=(503,))
READY = Route("GET", "/ready", "ready", "Readiness: the broker, the store and every service answer", "operations",
              auth="none", response_schema=HealthSchema, errors=(503,))
METRICS = Route("GET", "/metrics", "metrics", "Prometheus metrics of this gateway process", "operations",
                auth="none")
OPENAPI = Route("GET", "/openapi.json", "openapi", "This OpenAPI document", "operations", auth="none")
DOCS = Route("GET", "/docs", "docs", "API documentation page", "operations", auth="none")
DOCS_ASSET = Route("GET", "/docs/{asset}", "docsAsset", "An asset of the documentation page", "operations",
                   auth="none", errors=(404,))

REGISTER_PATIENT = Route(
    "POST", "/v1/patients", "registerPatient", "Register a new patient (the website's sign-up form)", "patients",
    auth="none", request_schema=PatientRegistrationSchema, response_schema=PatientSchema, response_status=201,
    errors=(409, *UPSTREAM), phi_resource="patient", idempotent=True)
GET_PATIENT = Route(
    "GET", "/v1/patients/{patient_id}", "getPatient", "A patient's registration", "patients",
    roles=("patient", *STAFF), response_schema=PatientSchema, errors=(404, *UPSTREAM), phi_resource="patient")
ASSIGN_CLINICIAN = Route(
    "PUT", "/v1/patients/{patient_id}/clinician", "assignClinician",
    "Make a clinician responsible for a patient (clinicians reach only the patients in their care)", "patients",
    roles=("admin",), request_schema=ClinicianAssignmentSchema, response_schema=PatientSchema,
    errors=(404, *UPSTREAM), phi_resource="patient")
LIST_PATIENT_NOTIFICATIONS = Route(
    "GET", "/v1/patients/{patient_id}/notifications", "listPatientNotifications",
    "Messages sent to a patient", "patients", roles=("patient", "admin"), query_schema=PageQuerySchema,
    response_schema=MessageSchema, many=True, errors=UPSTREAM, phi_resource="notification")

BOOK_APPOINTMENT = Route(
    "POST", "/v1/appointments", "bookAppointment", "Book a home visit for a cleared patient", "appointments",
    roles=("patient", "admin"), request_schema=BookingRequestSchema, response_schema=AppointmentSchema,
    response_status=201, errors=(404, 409, *UPSTREAM), phi_resource="appointment", idempotent=True)
GET_APPOINTMENT = Route(
    "GET", "/v1/appointments/{appointment_id}", "getAppointment", "One appointment", "appointments",
    roles=("patient", "nurse", *STAFF), response_schema=AppointmentSchema, errors=(404, *UPSTREAM),
    phi_resource="appointment")
LIST_APPOINTMENTS = Route(
    "GET", "/v1/appointments", "listAppointments",
    "Appointments in visit order (patients see their own, nurses those assigned to them, clinicians their "
    "patients')", "appointments",
    roles=("patient", "nurse", *STAFF), query_schema=AppointmentQuerySchema, response_schema=AppointmentSchema,
    many=True, errors=UPSTREAM, phi_resource="appointment")

GET_INVOICE = Route(
    "GET", "/v1/invoices/{invoice_id}", "getInvoice", "One invoice", "billing",
    roles=("patient", "finance", "admin"), response_schema=InvoiceSchema, errors=(404, *UPSTREAM),
    phi_resource="invoice")
LIST_INVOICES = Route(
    "GET", "/v1/invoices", "listInvoices", "Invoices (patients see their own)", "billing",
    roles=("patient", "finance", "admin"), query_schema=InvoiceQuerySchema, response_schema=InvoiceSchema,
    many=True, errors=UPSTREAM, phi_resource="invoice")

LIST_NURSES = Route(
    "GET", "/v1/nurses", "listNurses", "The nurses and the states they are licensed in", "nurses",
    roles=("nurse", *STAFF), query_schema=PageQuerySchema, response_schema=NurseSchema, many=True, errors=UPSTREAM)
PUT_NURSE = Route(
    "PUT", "/v1/nurses/{nurse_id}", "putNurse", "Add or update a nurse", "nurses", roles=("admin",),
    request_schema=NurseUpdateSchema, response_schema=NurseSchema, errors=UPSTREAM)

LIST_AUDIT = Route(
    "GET", "/v1/audit", "listAudit", "The audit log of access to health data, newest first", "operations",
    roles=("admin",), query_schema=AuditQuerySchema, response_schema=AuditEntrySchema, many=True)

ROUTES: tuple[Route, ...] = (
    HEALTH, READY, METRICS, OPENAPI, DOCS, DOCS_ASSET,
    REGISTER_PATIENT, GET_PATIENT, ASSIGN_CLINICIAN, LIST_PATIENT_NOTIFICATIONS,
    BOOK_APPOINTMENT, GET_APPOINTMENT, LIST_APPOINTMENTS,
    GET_INVOICE, LIST_INVOICES,
    LIST_NURSES, PUT_NURSE,
    LIST_AUDIT,
    *intake_api.ROUTES,
    *scheduling_api.ROUTES,
    *billing_api.ROUTES,
    *notifications_api.ROUTES,
)
