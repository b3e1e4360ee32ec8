"""Billing rules as plain functions: what a visit costs, in integer cents with a currency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chassis.config import ConfigVersion

#: What an IV dose may cost on this platform, whatever a catalogue says ($400 to $2,000). A catalogue may
#: narrow the range (``iv_dose_range_cents``) but never widen it: a typo cannot price a dose at $1 or $50,000.
IV_DOSE_BOUNDS_CENTS = (40_000, 200_000)


class PriceItemSchema(Schema):
    description = fields.String(required=True)
    amount_cents = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    iv_dose = fields.Boolean(required=True)


class PriceCatalogueSchema(Schema):
    currency = fields.String(required=True, validate=validate.Regexp(r"^[a-z]{3}$"))
    iv_dose_range_cents = fields.List(fields.Integer(strict=True), required=True, validate=validate.Length(equal=2))
    items = fields.Dict(keys=fields.String(), values=fields.Nested(PriceItemSchema), required=True)

    @validates_schema
    def _iv_doses_in_range(self, data: dict[str, Any], **_: Any) -> None:
        low, high = data["iv_dose_range_cents"]
        floor, ceiling = IV_DOSE_BOUNDS_CENTS
        if not floor <= low <= high <= ceiling:
            raise ValidationError(f"iv_dose_range_cents must lie within {floor} to {ceiling}, low before high")
        for code, item in data["items"].items():
            if item["iv_dose"] and not low <= item["amount_cents"] <= high:
                raise ValidationError(f"{code}: an IV dose must cost between {low} and {high} cents")


class UnknownPriceItem(Exception):
    pass


@dataclass(frozen=True)
class LineItem:
    code: str
    description: str
    quantity: int
    unit_amount_cents: int

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_amount_cents


@dataclass(frozen=True)
class Quote:
    currency: str
    line_items: list[LineItem]
    catalogue_version: str

    @property
    def total_cents(self) -> int:
        return sum(item.amount_cents for item in self.line_items)


def quote_visit(catalogue: ConfigVersion, visit_type: str) -> Quote:
    """The price of one visit of a type, from the catalogue version in force."""
    item = catalogue["items"].get(visit_type)
    if item is None:
        raise UnknownPriceItem(f"no price for visit type {visit_type!r} in catalogue {catalogue.version}")
    line = LineItem(code=visit_type, description=item["description"], quantity=1,
                    unit_amount_cents=item["amount_cents"])
    return Quote(currency=catalogue["currency"], line_items=[line], catalogue_version=catalogue.version)
