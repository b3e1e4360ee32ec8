"""Public routes that billing answers, beyond the foundation's in ``gateway.endpoints``.

Each route is a ``Route`` in ``ROUTES`` (which ``gateway.endpoints.ROUTES`` includes, so OpenAPI, roles,
idempotency, the PHI audit and the authorisation tests cover it) and one ``@api`` handler in
``BillingApi``, a mixin of ``gateway.service.GatewayService``, which gives it ``self.billing`` and the other
services' RPC proxies.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from gateway.api import ApiRequest, api
from gateway.routes import Route
from gateway.schemas import LineItemSchema

UPSTREAM = (502, 503, 504)


class QuoteRequestSchema(Schema):
    visit_type = fields.String(required=True, validate=validate.Length(min=1, max=50),
                               metadata={"example": "iv-mood"})
    postal_code = fields.String(validate=validate.Regexp(r"^\d{5}(-\d{4})?$"), metadata={"example": "80202"})
    discount_codes = fields.List(fields.String(validate=validate.Length(min=1, max=50)),
                                 validate=validate.Length(max=5), metadata={"example": ["veteran"]})


class QuoteSchema(Schema):
    quote_id = fields.String(required=True)
    visit_type = fields.String(allow_none=True)
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


CREATE_QUOTE = Route(
    "POST", "/v1/quotes", "createQuote",
    "The price of a visit before any hold (itemised, deposit due now, balance after, cancellation policy)",
    "billing", auth="none", request_schema=QuoteRequestSchema, response_schema=QuoteSchema, errors=UPSTREAM)

ROUTES: tuple[Route, ...] = (CREATE_QUOTE,)


class BillingApi:
    """Handlers of ``ROUTES``: check who may see which record (``gateway.access``), ask billing."""

    billing: Any

    @api(CREATE_QUOTE)
    def create_quote(self, request: ApiRequest) -> dict[str, Any]:
        return self.billing.quote({"visit_type": request.body["visit_type"],
                                   "postal_code": request.body.get("postal_code"),
                                   "discount_codes": request.body.get("discount_codes", [])})
