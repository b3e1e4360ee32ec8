"""Receipts and superbills: the CPT hour rule as a table, and both documents render as PDF."""

from datetime import UTC, datetime

import pytest

from services.billing.dependencies import load_practice
from services.billing.documents import address_in_words, infusion_codes, receipt_pdf, superbill_pdf

PRACTICE = load_practice().effective_at()
INVOICE = {
    "id": "inv_1", "visit_start_at": datetime(2026, 12, 3, 17, tzinfo=UTC), "total_cents": 59000,
    "discount_cents": 6000, "amount_due_cents": 0, "infusion_minutes": 91,
    "line_items": [{"code": "iv-mood", "description": "Home IV visit, mood protocol", "quantity": 1,
                    "unit_amount_cents": 60000, "amount_cents": 60000},
                   {"code": "travel-regional", "description": "Travel, regional", "quantity": 1,
                    "unit_amount_cents": 5000, "amount_cents": 5000}],
    "payments": [{"kind": "deposit", "amount_cents": 15000, "posted_at": "2026-11-25T12:00:00Z"},
                 {"kind": "balance", "amount_cents": 44000, "posted_at": "2026-12-03T19:00:00Z"}],
    "refunds": [],
}
FACTS = {"patient_id": "pat_1", "name": "Dana Rivera", "date_of_birth": "1987-06-15",
         "address": {"line1": "1600 Glenarm Pl", "city": "Denver", "state": "CO", "postal_code": "80202"},
         "referring": {"name": "Sam Lee, MD", "npi": "1023456789"},
         "icd10_codes": ["F33.2", "F43.10"]}


@pytest.mark.parametrize(("minutes", "codes"), [
    (30, [("96365", 1)]),
    (60, [("96365", 1)]),
    (89, [("96365", 1)]),
    (90, [("96365", 1)]),                    # exactly 30 minutes past the hour: not more than 30
    (91, [("96365", 1), ("96366", 1)]),
    (150, [("96365", 1), ("96366", 1)]),
    (151, [("96365", 1), ("96366", 2)]),
    (75, [("96365", 1)]),                    # the domain notes' example
    (0, []),
])
def test_96365_for_the_first_hour_and_96366_only_past_30_minutes_into_each_further_hour(minutes, codes):
    assert [(line.code, line.units) for line in infusion_codes(minutes)] == codes


def test_a_receipt_and_a_superbill_render_as_pdf():
    receipt = receipt_pdf(PRACTICE, INVOICE, "Dana Rivera")
    superbill = superbill_pdf(PRACTICE, INVOICE, FACTS)

    for document in (receipt, superbill):
        assert document.startswith(b"%PDF-") and document.rstrip().endswith(b"%%EOF")
    assert len(superbill) > 1000


def test_intakes_address_reads_as_one_line():
    assert address_in_words(FACTS["address"]) == "1600 Glenarm Pl, Denver, CO 80202"
