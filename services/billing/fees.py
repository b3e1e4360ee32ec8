"""The fee and refund policy: what is kept and what is refunded when a visit does not happen as booked.

Plain Python, no Nameko. The policy is versioned configuration (``config/fees.yml``); every decision names the
version it used. Fees are kept from what the patient paid (the deposit), never charged above it.

A visit paid by a package credit that does not happen gives the credit back to the package whatever the cause
(``service._return_package_credit``): a credit is not money paid on the invoice, so the fee, if any, is kept from
the invoice's deposit alone, as for any visit. A package visit booked without a deposit therefore keeps no fee.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from chassis.config import ConfigVersion

_CENTS = {"strict": True, "validate": validate.Range(min=0)}

#: Why money is kept or returned; the reason a fee or refund records.
CAUSES = ("patient_cancelled", "clinic_cancelled", "no_show", "aborted_chargeable", "aborted_clinical",
          "booking_failed", "patient_declined")


class NoticeTierSchema(Schema):
    min_notice_hours = fields.Float(required=True, validate=validate.Range(min=0))
    fee_cents = fields.Integer(required=True, **_CENTS)


class FeePolicySchema(Schema):
    #: The fee for a patient's cancellation by hours of notice: the first tier whose minimum the notice meets.
    notice_tiers = fields.List(fields.Nested(NoticeTierSchema), required=True, validate=validate.Length(min=1))
    #: When the nurse came but could not treat for a clinical reason.
    dispatch_fee_cents = fields.Integer(required=True, **_CENTS)
    #: Kept from what was paid when the clinician finds the patient ineligible.
    declined_retention_percent = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=100))
    waivers_per_year = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))

    @validates_schema
    def _tiers_from_longest_notice_down_to_zero(self, data: dict[str, Any], **_: Any) -> None:
        hours = [tier["min_notice_hours"] for tier in data["notice_tiers"]]
        if hours != sorted(hours, reverse=True) or len(set(hours)) != len(hours) or hours[-1] != 0:
            raise ValidationError("notice_tiers must go from the longest notice down to 0 hours, each once")


@dataclass(frozen=True)
class FeeDecision:
    cause: str
    fee_cents: int
    refund_cents: int
    policy_version: str
    waived: bool = False


def late_cancellation_fee(policy: ConfigVersion) -> int:
    return policy["notice_tiers"][-1]["fee_cents"]


def cancellation_fee(policy: ConfigVersion, notice_hours: float) -> int:
    for tier in policy["notice_tiers"]:
        if notice_hours >= tier["min_notice_hours"]:
            return tier["fee_cents"]
    return late_cancellation_fee(policy)


def decide(policy: ConfigVersion, cause: str, paid_cents: int, *, notice_hours: float | None = None,
           waived: bool = False) -> FeeDecision:
    """What is kept as a fee and what is refunded of ``paid_cents`` for a visit that did not happen.

    A no-show or a visit aborted for the patient's reason (not fasted, no escort) counts as a late
    cancellation; a clinical abort keeps the dispatch fee; a clinic cancellation or a failed booking refunds
    everything; a declined patient gets everything back but the retention percentage. A waiver keeps nothing.
    """
    if cause not in CAUSES:
        raise ValueError(f"unknown cause {cause!r}")
    if cause == "patient_cancelled":
        if notice_hours is None:
            raise ValueError("a patient's cancellation needs its notice in hours")
        fee = cancellation_fee(policy, notice_hours)
    elif cause in ("no_show", "aborted_chargeable"):
        fee = late_cancellation_fee(policy)
    elif cause == "aborted_clinical":
        fee = policy["dispatch_fee_cents"]
    elif cause == "patient_declined":
        fee = (paid_cents * policy["declined_retention_percent"]) // 100
    else:
        fee = 0
    if waived and fee:
        return FeeDecision(cause, 0, paid_cents, policy.version, waived=True)
    fee = min(fee, paid_cents)
    return FeeDecision(cause, fee, paid_cents - fee, policy.version)


def dollars(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def policy_in_words(policy: ConfigVersion) -> str:
    """The cancellation policy as a patient reads it on a quote."""
    tiers = policy["notice_tiers"]
    sentences = []
    for index, tier in enumerate(tiers):
        hours = tier["min_notice_hours"]
        if index == 0:
            when = f"Cancel {hours:g} hours or more before the visit"
        else:
            when = f"Cancel {hours:g} to {tiers[index - 1]['min_notice_hours']:g} hours before" if hours else (
                f"Cancel under {tiers[index - 1]['min_notice_hours']:g} hours before")
        outcome = "your deposit is refunded in full" if tier["fee_cents"] == 0 else (
            f"a {dollars(tier['fee_cents'])} fee is kept from your deposit")
        sentences.append(f"{when}: {outcome}.")
    sentences.append("A missed visit, or one that cannot go ahead because the preparation instructions were not "
                     "followed (for example not fasting or no escort), counts as a late cancellation.")
    if policy["dispatch_fee_cents"]:
        sentences.append(f"If the nurse comes but the visit cannot go ahead for a medical reason, a "
                         f"{dollars(policy['dispatch_fee_cents'])} dispatch fee is kept.")
    sentences.append("If we cancel, you are refunded in full.")
    return " ".join(sentences)
