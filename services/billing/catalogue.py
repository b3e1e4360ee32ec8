"""The price catalogue and the quote: what a visit or a package costs, in integer cents with a currency.

Plain Python, no Nameko. A quote is computed from one catalogue version (visit types, travel zones, discounts,
packages, the deposit rule) and one fee policy version (its cancellation terms in words); it records both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chassis.config import ConfigVersion
from chassis.errors import InvalidInput

#: What an IV dose may cost on this platform, whatever a catalogue says ($400 to $2,000). A catalogue may
#: narrow the range (``iv_dose_range_cents``) but never widen it: a typo cannot price a dose at $1 or $50,000.
IV_DOSE_BOUNDS_CENTS = (40_000, 200_000)
#: The same for a sublingual dose ($200 to $250).
SUBLINGUAL_DOSE_BOUNDS_CENTS = (20_000, 25_000)

#: What a visit type is, for pricing: an IV dose, a sublingual dose, or the free consultation.
KINDS = ("iv", "sublingual", "consultation")

_CENTS = {"strict": True, "validate": validate.Range(min=0)}


class PriceItemSchema(Schema):
    description = fields.String(required=True)
    amount_cents = fields.Integer(required=True, **_CENTS)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    #: How long the infusion runs (pain infusions are priced by length); informative for the others.
    infusion_minutes = fields.Integer(strict=True, validate=validate.Range(min=1), load_default=None)
    charges_travel = fields.Boolean(load_default=True)


class TravelZoneSchema(Schema):
    description = fields.String(required=True)
    fee_cents = fields.Integer(required=True, **_CENTS)
    postal_prefixes = fields.List(fields.String(validate=validate.Regexp(r"^\d{1,5}$")), load_default=list)


class TravelSchema(Schema):
    default_zone = fields.String(required=True)
    zones = fields.Dict(keys=fields.String(), values=fields.Nested(TravelZoneSchema), required=True)


class DiscountSchema(Schema):
    description = fields.String(required=True)
    percent = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=50))


class PackageSchema(Schema):
    description = fields.String(required=True)
    visit_type = fields.String(required=True)
    visits = fields.Integer(required=True, strict=True, validate=validate.Range(min=2))
    amount_cents = fields.Integer(required=True, **_CENTS)
    valid_days = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class DepositRuleSchema(Schema):
    """Deposit due now: ``percent`` of the total, at least ``minimum_cents``, never more than the total."""

    percent = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=100))
    minimum_cents = fields.Integer(required=True, **_CENTS)


class PriceCatalogueSchema(Schema):
    currency = fields.String(required=True, validate=validate.Regexp(r"^[a-z]{3}$"))
    iv_dose_range_cents = fields.List(fields.Integer(strict=True), required=True, validate=validate.Length(equal=2))
    items = fields.Dict(keys=fields.String(), values=fields.Nested(PriceItemSchema), required=True)
    travel = fields.Nested(TravelSchema, required=True)
    discounts = fields.Dict(keys=fields.String(), values=fields.Nested(DiscountSchema), load_default=dict)
    packages = fields.Dict(keys=fields.String(), values=fields.Nested(PackageSchema), load_default=dict)
    deposit = fields.Nested(DepositRuleSchema, required=True)

    @validates_schema
    def _prices_within_the_platform_bounds(self, data: dict[str, Any], **_: Any) -> None:
        low, high = data["iv_dose_range_cents"]
        floor, ceiling = IV_DOSE_BOUNDS_CENTS
        if not floor <= low <= high <= ceiling:
            raise ValidationError(f"iv_dose_range_cents must lie within {floor} to {ceiling}, low before high")
        sublingual_low, sublingual_high = SUBLINGUAL_DOSE_BOUNDS_CENTS
        for code, item in data["items"].items():
            cents = item["amount_cents"]
            if item["kind"] == "iv" and not low <= cents <= high:
                raise ValidationError(f"{code}: an IV dose must cost between {low} and {high} cents")
            if item["kind"] == "sublingual" and not sublingual_low <= cents <= sublingual_high:
                raise ValidationError(f"{code}: a sublingual dose must cost between {sublingual_low} and "
                                      f"{sublingual_high} cents")
            if item["kind"] == "consultation" and cents != 0:
                raise ValidationError(f"{code}: the consultation is free")

    @validates_schema
    def _references_resolve(self, data: dict[str, Any], **_: Any) -> None:
        if data["travel"]["default_zone"] not in data["travel"]["zones"]:
            raise ValidationError("travel.default_zone must name one of travel.zones")
        for code, package in data.get("packages", {}).items():
            item = data["items"].get(package["visit_type"])
            if item is None:
                raise ValidationError(f"package {code}: no visit type {package['visit_type']!r}")
            if package["amount_cents"] >= package["visits"] * item["amount_cents"]:
                raise ValidationError(f"package {code}: must cost less than its visits bought one by one")


class UnknownPriceItem(InvalidInput):
    """A visit type, package or discount the catalogue in force does not have."""

    code = "unknown_price_item"

    def __init__(self, field_name: str, value: str, catalogue_version: str) -> None:
        super().__init__(f"no {field_name.replace('_', ' ')} {value!r} in catalogue {catalogue_version}",
                         errors={field_name: [f"unknown: {value}"]}, catalogue_version=catalogue_version)


@dataclass(frozen=True)
class LineItem:
    code: str
    description: str
    quantity: int
    unit_amount_cents: int

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_amount_cents

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "description": self.description, "quantity": self.quantity,
                "unit_amount_cents": self.unit_amount_cents, "amount_cents": self.amount_cents}


@dataclass(frozen=True)
class Quote:
    currency: str
    line_items: list[LineItem]
    catalogue_version: str
    discount_cents: int = 0
    discount_code: str | None = None
    deposit_cents: int = 0
    travel_zone: str | None = None
    cancellation_policy: str = ""
    fee_policy_version: str | None = None
    visit_type: str | None = None
    package: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def subtotal_cents(self) -> int:
        return sum(item.amount_cents for item in self.line_items)

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents - self.discount_cents

    @property
    def balance_cents(self) -> int:
        return self.total_cents - self.deposit_cents

    def as_dict(self) -> dict[str, Any]:
        return {"currency": self.currency, "lines": [line.as_dict() for line in self.line_items],
                "discount_cents": self.discount_cents, "discount_code": self.discount_code,
                "total_cents": self.total_cents, "deposit_cents": self.deposit_cents,
                "balance_cents": self.balance_cents, "travel_zone": self.travel_zone,
                "cancellation_policy": self.cancellation_policy, "catalogue_version": self.catalogue_version,
                "fee_policy_version": self.fee_policy_version, "visit_type": self.visit_type,
                "package": self.package}


def travel_zone(catalogue: ConfigVersion, postal_code: str) -> str:
    """The zone of a postal code: the zone with the longest matching prefix, else the default zone."""
    best, best_length = catalogue["travel"]["default_zone"], -1
    for name, zone in catalogue["travel"]["zones"].items():
        for prefix in zone["postal_prefixes"]:
            if postal_code.startswith(prefix) and len(prefix) > best_length:
                best, best_length = name, len(prefix)
    return best


def percent_of(amount_cents: int, percent: int) -> int:
    """``percent`` of an amount in whole cents, half a cent rounded up."""
    return (amount_cents * percent + 50) // 100


def discount_for(catalogue: ConfigVersion, codes: list[str], discountable_cents: int) -> tuple[int, str | None]:
    """The best single discount among ``codes`` (discounts do not stack), in cents, and its code."""
    discounts = catalogue["discounts"]
    for code in codes:
        if code not in discounts:
            raise UnknownPriceItem("discount_codes", code, catalogue.version)
    if not codes:
        return 0, None
    best = max(codes, key=lambda code: discounts[code]["percent"])
    return percent_of(discountable_cents, discounts[best]["percent"]), best


def deposit_for(catalogue: ConfigVersion, total_cents: int) -> int:
    rule = catalogue["deposit"]
    return min(total_cents, max(rule["minimum_cents"], percent_of(total_cents, rule["percent"])))


def quote_visit(catalogue: ConfigVersion, visit_type: str, *, postal_code: str | None = None,
                discount_codes: list[str] | tuple[str, ...] = (), cancellation_policy: str = "",
                fee_policy_version: str | None = None) -> Quote:
    """The price of one visit: the visit type, the travel fee of the patient's zone (when the postal code is
    known), the best discount (on the visit, not the travel fee), and the deposit due now."""
    item = catalogue["items"].get(visit_type)
    if item is None:
        raise UnknownPriceItem("visit_type", visit_type, catalogue.version)
    lines = [LineItem(visit_type, item["description"], 1, item["amount_cents"])]
    zone = None
    if postal_code is not None and item["charges_travel"]:
        zone = travel_zone(catalogue, postal_code)
        fee = catalogue["travel"]["zones"][zone]["fee_cents"]
        if fee:
            lines.append(LineItem(f"travel-{zone}", catalogue["travel"]["zones"][zone]["description"], 1, fee))
    discount, discount_code = discount_for(catalogue, list(discount_codes), item["amount_cents"])
    total = sum(line.amount_cents for line in lines) - discount
    return Quote(currency=catalogue["currency"], line_items=lines, catalogue_version=catalogue.version,
                 discount_cents=discount, discount_code=discount_code, deposit_cents=deposit_for(catalogue, total),
                 travel_zone=zone, cancellation_policy=cancellation_policy, fee_policy_version=fee_policy_version,
                 visit_type=visit_type)


def quote_package(catalogue: ConfigVersion, package: str, *,
                  discount_codes: list[str] | tuple[str, ...] = ()) -> Quote:
    """A package of visits, paid in full when bought (its deposit is its total)."""
    offer = catalogue["packages"].get(package)
    if offer is None:
        raise UnknownPriceItem("package", package, catalogue.version)
    lines = [LineItem(f"package-{package}", offer["description"], 1, offer["amount_cents"])]
    discount, discount_code = discount_for(catalogue, list(discount_codes), offer["amount_cents"])
    total = offer["amount_cents"] - discount
    return Quote(currency=catalogue["currency"], line_items=lines, catalogue_version=catalogue.version,
                 discount_cents=discount, discount_code=discount_code, deposit_cents=total,
                 visit_type=offer["visit_type"], package=package,
                 extra={"visits": offer["visits"], "valid_days": offer["valid_days"]})
