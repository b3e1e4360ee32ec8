"""Receipts and superbills: what they say (plain functions) and how they print (PDF with fpdf2).

The CPT rule for the infusion: 96365 for the first hour; 96366 for each additional hour, counted only when the
infusion ran more than 30 minutes past the previous hour (a 75-minute infusion is 96365 alone; 91 minutes adds
one 96366). The drug is J3490. Diagnosis codes come from intake at rendering time and are not stored here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fpdf import FPDF
from marshmallow import Schema, fields, validate

from services.billing.fees import dollars

FIRST_HOUR, ADDITIONAL_HOUR = "96365", "96366"


class ProviderSchema(Schema):
    name = fields.String(required=True)
    npi = fields.String(required=True, validate=validate.Regexp(r"^\d{10}$"))


class PracticeSchema(Schema):
    name = fields.String(required=True)
    address = fields.String(required=True)
    phone = fields.String(required=True)
    tax_id = fields.String(required=True, validate=validate.Regexp(r"^\d{2}-\d{7}$"))
    rendering_provider = fields.Nested(ProviderSchema, required=True)
    practice_npi = fields.String(required=True, validate=validate.Regexp(r"^\d{10}$"))
    place_of_service = fields.String(required=True, validate=validate.Regexp(r"^\d{2}$"))
    drug_code = fields.String(required=True)


@dataclass(frozen=True)
class ProcedureLine:
    code: str
    description: str
    units: int


def infusion_codes(infusion_minutes: int) -> list[ProcedureLine]:
    """The CPT lines of one IV infusion of ``infusion_minutes``."""
    if infusion_minutes <= 0:
        return []
    lines = [ProcedureLine(FIRST_HOUR, "IV infusion, therapeutic, initial, up to 1 hour", 1)]
    additional = max(0, (infusion_minutes - 31) // 60)
    if additional:
        lines.append(ProcedureLine(ADDITIONAL_HOUR, "IV infusion, each additional hour", additional))
    return lines


def _latin1(text: Any) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


class _Document(FPDF):
    def __init__(self, title: str, practice: Mapping[str, Any]) -> None:
        super().__init__(format="Letter")
        self.set_auto_page_break(auto=True, margin=15)
        self.add_page()
        self.set_font("Helvetica", "B", 16)
        self.cell(0, 9, _latin1(practice["name"]), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", "", 9)
        for text in (practice["address"], f"Phone {practice['phone']}  -  Tax ID {practice['tax_id']}  -  "
                                          f"NPI {practice['practice_npi']}"):
            self.cell(0, 5, _latin1(text), new_x="LMARGIN", new_y="NEXT")
        self.ln(4)
        self.set_font("Helvetica", "B", 13)
        self.cell(0, 8, _latin1(title), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", "", 10)

    def line_of(self, *cells: tuple[str, float, str]) -> None:
        for text, width, align in cells:
            self.cell(width, 6, _latin1(text), align=align)
        self.ln(6)

    def heading(self, text: str) -> None:
        self.ln(2)
        self.set_font("Helvetica", "B", 10)
        self.cell(0, 6, _latin1(text), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", "", 10)


def address_in_words(address: Any) -> str:
    """Intake's address (a mapping) on one line; text as it is."""
    if not isinstance(address, Mapping):
        return str(address or "")
    street = ", ".join(str(address[key]) for key in ("line1", "line2") if address.get(key))
    return f"{street}, {address.get('city', '')}, {address.get('state', '')} {address.get('postal_code', '')}".strip()


def _day(value: Any) -> str:
    return value.date().isoformat() if isinstance(value, datetime) else str(value)[:10]


def receipt_pdf(practice: Mapping[str, Any], invoice: Mapping[str, Any], patient_name: str) -> bytes:
    """An itemised receipt fit for an HSA/FSA claim: who was paid, for what service, when, and how much."""
    document = _Document("Receipt", practice)
    document.line_of((f"Invoice {invoice['id']}", 110, "L"), (f"Date of service {_day(invoice['visit_start_at'])}",
                                                               0, "R"))
    document.line_of((f"Patient: {patient_name}", 0, "L"))
    document.heading("Services")
    for line in invoice["line_items"]:
        document.line_of((line["description"], 130, "L"), (f"{line['quantity']} x", 20, "R"),
                         (dollars(line["amount_cents"]), 0, "R"))
    if invoice.get("discount_cents"):
        document.line_of(("Discount", 150, "L"), (f"-{dollars(invoice['discount_cents'])}", 0, "R"))
    if invoice.get("fee_cents"):
        document.line_of(("Cancellation fee kept", 150, "L"), (dollars(invoice["fee_cents"]), 0, "R"))
    document.line_of(("Total", 150, "L"), (dollars(invoice["total_cents"]), 0, "R"))
    document.heading("Payments")
    for payment in invoice.get("payments", []):
        document.line_of((f"{_day(payment['posted_at'])}  card payment ({payment['kind']})", 150, "L"),
                         (dollars(payment["amount_cents"]), 0, "R"))
    for refund in invoice.get("refunds", []):
        document.line_of((f"{_day(refund['posted_at'])}  refund", 150, "L"),
                         (f"-{dollars(refund['amount_cents'])}", 0, "R"))
    document.line_of(("Amount due", 150, "L"), (dollars(max(invoice["amount_due_cents"], 0)), 0, "R"))
    document.ln(4)
    document.multi_cell(0, 5, _latin1("Paid by card through Stripe. Keep this receipt for your health savings or "
                                      "flexible spending account."))
    return bytes(document.output())


def superbill_pdf(practice: Mapping[str, Any], invoice: Mapping[str, Any], facts: Mapping[str, Any]) -> bytes:
    """A superbill for out-of-network reimbursement; ``facts`` is intake's ``superbill_facts`` answer, used
    here and never stored."""
    document = _Document("Superbill (statement for out-of-network reimbursement)", practice)
    rendering = practice["rendering_provider"]
    referring = facts.get("referring") or {}
    document.line_of((f"Patient: {facts['name']}", 110, "L"), (f"Date of birth: {facts['date_of_birth']}", 0, "R"))
    document.line_of((f"Address: {address_in_words(facts.get('address'))}", 0, "L"))
    document.line_of((f"Rendering provider: {rendering['name']}, NPI {rendering['npi']}", 0, "L"))
    document.line_of((f"Referring provider: {referring.get('name', '')}, NPI {referring.get('npi', '')}", 0, "L"))
    document.line_of((f"Place of service: {practice['place_of_service']} (home)", 110, "L"),
                     (f"Date of service: {_day(invoice.get('completed_at') or invoice['visit_start_at'])}", 0, "R"))
    document.heading("Diagnoses (ICD-10-CM)")
    document.line_of((", ".join(facts.get("icd10_codes") or []), 0, "L"))
    document.heading("Procedures")
    document.line_of(("Code", 25, "L"), ("Description", 125, "L"), ("Units", 0, "R"))
    for procedure in infusion_codes(int(invoice.get("infusion_minutes") or 0)):
        document.line_of((procedure.code, 25, "L"), (procedure.description, 125, "L"), (str(procedure.units), 0, "R"))
    document.line_of((practice["drug_code"], 25, "L"), ("Unclassified drug (ketamine)", 125, "L"), ("1", 0, "R"))
    document.heading("Charges and payments")
    document.line_of(("Total charged", 150, "L"), (dollars(invoice["total_cents"]), 0, "R"))
    paid = sum(p["amount_cents"] for p in invoice.get("payments", [])) - sum(
        r["amount_cents"] for r in invoice.get("refunds", []))
    document.line_of(("Amount paid by the patient", 150, "L"), (dollars(paid), 0, "R"))
    return bytes(document.output())
