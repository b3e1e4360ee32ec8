"""Public routes that billing answers, beyond the foundation's in ``gateway.endpoints``.

Each route is a ``Route`` in ``ROUTES`` (which ``gateway.endpoints.ROUTES`` includes, so OpenAPI, roles,
idempotency, the PHI audit and the authorisation tests cover it) and one ``@api`` handler in
``BillingApi``, a mixin of ``gateway.service.GatewayService``, which gives it ``self.billing`` and the other
services' RPC proxies.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from nameko.exceptions import MethodNotFound
from werkzeug.wrappers import Response

from gateway.access import require_patient_access
from gateway.api import ApiRequest, Forbidden, api
from gateway.problems import ProblemError
from gateway.routes import Route
from gateway.schemas import LineItemSchema

log = logging.getLogger(__name__)

UPSTREAM = (502, 503, 504)


class QuoteRequestSchema(Schema):
    visit_type = fields.String(required=True, validate=validate.Length(min=1, max=50),
                               metadata={"example": "iv-mood"})
    postal_code = fields.String(validate=validate.Regexp(r"^\d{5}(-\d{4})?$"), metadata={"example": "80202"})
    discount_codes = fields.List(fields.String(validate=validate.Length(min=1, max=50)),
                                 validate=validate.Length(max=5), metadata={"example": ["veteran"]})


class QuoteSchema(Schema):
    quote_id = fields.String(required=True)
    patient_id = fields.String(allow_none=True)
    hold_id = fields.String(allow_none=True)
    visit_type = fields.String(allow_none=True)
    package = fields.String(allow_none=True)
    currency = fields.String(required=True)
    lines = fields.List(fields.Nested(LineItemSchema), required=True)
    discount_cents = fields.Integer(required=True)
    discount_code = fields.String(allow_none=True)
    total_cents = fields.Integer(required=True)
    deposit_cents = fields.Integer(required=True, metadata={"description": "due now, when the visit is held"})
    balance_cents = fields.Integer(required=True, metadata={"description": "charged after the visit"})
    travel_zone = fields.String(allow_none=True)
    cancellation_policy = fields.String(required=True)
    catalogue_version = fields.String(required=True)
    fee_policy_version = fields.String(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)


class DepositRequestSchema(Schema):
    payment_method_id = fields.String(required=True, validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,120}$"),
                                      metadata={"description": "from Stripe.js", "example": "pm_card_visa"})


class DepositSchema(Schema):
    hold_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(
        ["succeeded", "requires_action", "processing", "open"]))
    payment_intent_id = fields.String(allow_none=True)
    client_secret = fields.String(allow_none=True, metadata={
        "description": "with requires_action: for Stripe.js to finish 3-D Secure"})
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)


class PackageRequestSchema(Schema):
    package = fields.String(required=True, validate=validate.Length(min=1, max=50),
                            metadata={"example": "induction-6"})
    payment_method_id = fields.String(required=True, validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,120}$"),
                                      metadata={"example": "pm_card_visa"})
    discount_codes = fields.List(fields.String(validate=validate.Length(min=1, max=50)),
                                 validate=validate.Length(max=5))


class PackagePurchaseSchema(Schema):
    purchase_id = fields.String(required=True)
    package = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["succeeded", "requires_action", "processing"]))
    payment_intent_id = fields.String(allow_none=True)
    client_secret = fields.String(allow_none=True)
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)


class PackageSchema(Schema):
    purchase_id = fields.String(required=True)
    package = fields.String(required=True)
    visit_type = fields.String(required=True)
    visits = fields.Integer(required=True)
    visits_used = fields.Integer(required=True)
    visits_left = fields.Integer(required=True, metadata={"description": "visits that can still be booked on it"})
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)
    paid_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["active", "used_up", "expired", "declined"]),
                           metadata={"description": "declined: the unused visits were refunded less the retention"})


class PackageListSchema(Schema):
    items = fields.List(fields.Nested(PackageSchema), required=True)


class RefundRequestSchema(Schema):
    amount_cents = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    currency = fields.String(required=True, validate=validate.OneOf(["usd"]))
    reason = fields.String(required=True, validate=validate.Length(min=3, max=200))


class RefundSchema(Schema):
    refund_id = fields.String(required=True)
    amount_cents = fields.Integer(required=True)
    currency = fields.String(required=True)


class RefundsSchema(Schema):
    invoice_id = fields.String(required=True)
    refunds = fields.List(fields.Nested(RefundSchema), required=True)


class WaiverSchema(Schema):
    invoice_id = fields.String(required=True)
    waived = fields.Boolean(required=True)


class BalanceSchema(Schema):
    patient_id = fields.String(required=True)
    currency = fields.String(required=True)
    balance_cents = fields.Integer(required=True, metadata={"description": "owed on invoices (negative: owed to "
                                                                           "the patient)"})
    deposits_held_cents = fields.Integer(required=True)


class WebhookAnswerSchema(Schema):
    event_id = fields.String(required=True)
    duplicate = fields.Boolean(required=True)


class ExportQuerySchema(Schema):
    """A range of UTC days (the last 30 by default), and the format."""

    from_ = fields.Date(data_key="from", metadata={"example": "2026-11-01"})
    to = fields.Date(metadata={"example": "2026-11-30"})
    format = fields.String(load_default="csv", validate=validate.OneOf(["csv", "jsonl"]))

    @validates_schema
    def _from_before_to(self, data: dict[str, Any], **_: Any) -> None:
        if "from_" in data and "to" in data and data["to"] < data["from_"]:
            raise ValidationError({"to": ["must not be before from"]})


class ReconciliationQuerySchema(Schema):
    from_ = fields.Date(data_key="from")
    to = fields.Date()


class DifferenceSchema(Schema):
    problem = fields.String(required=True, validate=validate.OneOf(
        ["missing_in_ledger", "missing_at_stripe", "amount_differs", "fee_differs"]))
    source = fields.String(required=True)
    stripe_amount_cents = fields.Integer(allow_none=True)
    ledger_amount_cents = fields.Integer(allow_none=True)
    stripe_fee_cents = fields.Integer(allow_none=True)
    ledger_fee_cents = fields.Integer(allow_none=True)


class ReconciliationSchema(Schema):
    date_from = fields.Date(required=True)
    date_to = fields.Date(required=True)
    stripe_transactions = fields.Integer(required=True)
    differences = fields.List(fields.Nested(DifferenceSchema), required=True)


CREATE_QUOTE = Route(
    "POST", "/v1/quotes", "createQuote",
    "The price of a visit before any hold (itemised, deposit due now, balance after, cancellation policy)",
    "billing", auth="none", request_schema=QuoteRequestSchema, response_schema=QuoteSchema, errors=UPSTREAM)

PAY_DEPOSIT = Route(
    "POST", "/v1/holds/{hold_id}/deposit", "payDeposit",
    "Pay a hold's deposit (its quote's) with a Stripe payment method, saving the card for the balance",
    "billing", roles=("patient", "admin"), request_schema=DepositRequestSchema, response_schema=DepositSchema,
    errors=(402, 404, 409, *UPSTREAM), phi_resource="payment", idempotent=True)
BUY_PACKAGE = Route(
    "POST", "/v1/patients/{patient_id}/packages", "buyPackage",
    "Buy a package of visits (paid in full now, at the catalogue's package price)", "billing",
    roles=("patient", "admin"), request_schema=PackageRequestSchema, response_schema=PackagePurchaseSchema,
    response_status=201, errors=(402, 404, 409, *UPSTREAM), phi_resource="payment", idempotent=True)
LIST_PACKAGES = Route(
    "GET", "/v1/patients/{patient_id}/packages", "listPackages",
    "A patient's packages paid for: visits used and left, expiry and status", "billing",
    roles=("patient", "finance", "admin"), response_schema=PackageListSchema, errors=(404, *UPSTREAM),
    phi_resource="payment", phi_action="list")
STRIPE_WEBHOOK = Route(
    "POST", "/v1/webhooks/stripe", "stripeWebhook", "Stripe's events (signed; de-duplicated by id)", "billing",
    auth="signature", response_schema=WebhookAnswerSchema, errors=UPSTREAM)
REFUND_INVOICE = Route(
    "POST", "/v1/invoices/{invoice_id}/refunds", "refundInvoice",
    "Refund part or all of what was paid on an invoice, with a reason (never above what was paid)", "billing",
    roles=("finance", "admin"), request_schema=RefundRequestSchema, response_schema=RefundsSchema,
    response_status=201, errors=(404, *UPSTREAM), phi_resource="invoice", idempotent=True)
WAIVE_FEE = Route(
    "POST", "/v1/invoices/{invoice_id}/fee-waiver", "waiveFee",
    "Waive the invoice's cancellation fee (one waiver per patient per year)", "billing", roles=("admin",),
    response_schema=WaiverSchema, errors=(404, *UPSTREAM), phi_resource="invoice", phi_action="update")
PATIENT_BALANCE = Route(
    "GET", "/v1/patients/{patient_id}/balance", "getPatientBalance", "What the patient owes, from the ledger",
    "billing", roles=("patient", "finance", "admin"), response_schema=BalanceSchema, errors=(404, *UPSTREAM),
    phi_resource="invoice")

RECEIPT = Route(
    "GET", "/v1/invoices/{invoice_id}/receipt.pdf", "getReceipt", "The invoice's itemised receipt (HSA/FSA), PDF",
    "billing", roles=("patient", "finance", "admin"), errors=(404, *UPSTREAM), phi_resource="invoice",
    response_media=("application/pdf",))
SUPERBILL = Route(
    "GET", "/v1/invoices/{invoice_id}/superbill.pdf", "getSuperbill",
    "The visit's superbill for out-of-network reimbursement (CPT, ICD-10 from intake at rendering), PDF",
    "billing", roles=("patient", "finance", "admin"), errors=(404, *UPSTREAM), phi_resource="invoice",
    response_media=("application/pdf",))
EXPORT = Route(
    "GET", "/v1/exports/{kind}", "getExport",
    "A finance export (payments, refunds, fees, ledger, daily-revenue) for a range of UTC days, streamed",
    "billing", roles=("finance", "admin"), query_schema=ExportQuerySchema, errors=(404, 422, *UPSTREAM),
    response_media=("text/csv", "application/x-ndjson"))
RECONCILIATION = Route(
    "GET", "/v1/reconciliation", "getReconciliation",
    "Every difference between the ledger and Stripe's balance transactions for a range of UTC days", "billing",
    roles=("finance", "admin"), query_schema=ReconciliationQuerySchema, response_schema=ReconciliationSchema,
    errors=(422, *UPSTREAM))

ROUTES: tuple[Route, ...] = (CREATE_QUOTE, PAY_DEPOSIT, BUY_PACKAGE, LIST_PACKAGES, STRIPE_WEBHOOK, REFUND_INVOICE,
                             WAIVE_FEE, PATIENT_BALANCE, RECEIPT, SUPERBILL, EXPORT, RECONCILIATION)
EXPORT_KINDS = ("payments", "refunds", "fees", "ledger", "daily-revenue")


class BillingApi:
    """Handlers of ``ROUTES``: check who may see which record (``gateway.access``), ask billing."""

    billing: Any
    scheduling: Any
    intake: Any

    @api(CREATE_QUOTE)
    def create_quote(self, request: ApiRequest) -> dict[str, Any]:
        return self.billing.quote({"visit_type": request.body["visit_type"],
                                   "postal_code": request.body.get("postal_code"),
                                   "discount_codes": request.body.get("discount_codes", [])})

    @api(PAY_DEPOSIT)
    def pay_deposit(self, request: ApiRequest, hold_id: str) -> dict[str, Any]:
        patient_id = request.subject if request.role == "patient" else None
        if patient_id is not None:
            self._require_own_hold(request, hold_id)
        return self.billing.pay_deposit(hold_id, request.body["payment_method_id"], patient_id)

    def _require_own_hold(self, request: ApiRequest, hold_id: str) -> None:
        """The hold must be the caller's (scheduling's ``get_hold``); billing checks it again against the
        patient its quote was given for, so a scheduling without ``get_hold`` yet still refuses another's hold."""
        try:
            hold = self.scheduling.get_hold(hold_id)
        except MethodNotFound:
            log.warning("scheduling has no get_hold: billing's own check of the hold's patient decides")
            return
        if hold["patient_id"] != request.subject:
            raise Forbidden("Patients may only pay their own holds.")

    @api(BUY_PACKAGE)
    def buy_package(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.billing.buy_package({**request.body, "patient_id": patient_id})

    @api(LIST_PACKAGES)
    def list_packages(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return {"items": self.billing.patient_packages(patient_id)}

    @api(STRIPE_WEBHOOK)
    def stripe_webhook(self, request: ApiRequest) -> dict[str, Any]:
        return self.billing.handle_stripe_event(request.body)

    @api(REFUND_INVOICE)
    def refund_invoice(self, request: ApiRequest, invoice_id: str) -> dict[str, Any]:
        return self.billing.refund_invoice(invoice_id, {**request.body, "requested_by": request.subject})

    @api(WAIVE_FEE)
    def waive_fee(self, request: ApiRequest, invoice_id: str) -> dict[str, Any]:
        return self.billing.waive_fee(invoice_id, request.subject)

    @api(PATIENT_BALANCE)
    def patient_balance(self, request: ApiRequest, patient_id: str) -> dict[str, Any]:
        require_patient_access(request, patient_id, self.intake)
        return self.billing.patient_balance(patient_id)

    @api(RECEIPT)
    def receipt(self, request: ApiRequest, invoice_id: str) -> Response:
        require_patient_access(request, self.billing.get_invoice(invoice_id)["patient_id"], self.intake)
        return _pdf_response(self.billing.receipt_pdf(invoice_id))

    @api(SUPERBILL)
    def superbill(self, request: ApiRequest, invoice_id: str) -> Response:
        require_patient_access(request, self.billing.get_invoice(invoice_id)["patient_id"], self.intake)
        return _pdf_response(self.billing.superbill_pdf(invoice_id))

    @api(EXPORT)
    def export(self, request: ApiRequest, kind: str) -> Response:
        """Streamed: the gateway pages through billing by cursor as the client reads, one page in memory."""
        if kind not in EXPORT_KINDS:
            raise ExportNotFound(f"No export {kind!r}; one of {', '.join(EXPORT_KINDS)}.")
        date_from, date_to = _range(request.query)
        fmt = request.query["format"]
        first = self.billing.export_page(kind, date_from, date_to, format=fmt, limit=100)  # errors before 200
        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        return Response(self._export_stream(kind, fmt, date_from, date_to, first), mimetype=media, headers={
            "Content-Disposition": f'attachment; filename="{kind}-{date_from}-{date_to}.{fmt}"'})

    def _export_stream(self, kind: str, fmt: str, date_from: str, date_to: str,
                       page: dict[str, Any]) -> Iterator[bytes]:
        while True:
            yield page["text"].encode()
            if page["next_cursor"] is None:
                return
            page = self.billing.export_page(kind, date_from, date_to, cursor=page["next_cursor"], format=fmt,
                                            limit=100)

    @api(RECONCILIATION)
    def reconciliation(self, request: ApiRequest) -> dict[str, Any]:
        return self.billing.reconcile(*_range(request.query))


class ExportNotFound(ProblemError):
    status, code, title = 404, "export_not_found", "Not Found"


def _range(query: dict[str, Any]) -> tuple[str, str]:
    today = datetime.now(UTC).date()
    date_to = query.get("to") or today
    date_from = query.get("from_") or date_to - timedelta(days=30)
    return date_from.isoformat(), date_to.isoformat()


def _pdf_response(document: dict[str, str]) -> Response:
    return Response(base64.b64decode(document["content_base64"]), mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{document["filename"]}"'})
