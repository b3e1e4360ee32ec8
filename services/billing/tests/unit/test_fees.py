"""The fee and refund policy of ``config/fees.yml``: what is kept of what the patient paid, and what is
refunded, for each way a visit does not happen as booked."""

import pytest

from chassis.config import ConfigurationInvalid, VersionedConfig
from services.billing.dependencies import load_fee_policy
from services.billing.fees import FeePolicySchema, decide, policy_in_words

POLICY = load_fee_policy().effective_at()
DEPOSIT = 15000


@pytest.mark.parametrize(("cause", "notice_hours", "paid", "fee", "refund"), [
    ("patient_cancelled", 72, DEPOSIT, 0, DEPOSIT),         # more than 48 h: deposit refunded
    ("patient_cancelled", 48, DEPOSIT, 0, DEPOSIT),         # exactly 48 h is still "48 or more"
    ("patient_cancelled", 47.9, DEPOSIT, 5000, 10000),      # 24-48 h: a small fee
    ("patient_cancelled", 24, DEPOSIT, 5000, 10000),
    ("patient_cancelled", 23.9, DEPOSIT, 10000, 5000),      # under 24 h: the larger fee
    ("patient_cancelled", 0, DEPOSIT, 10000, 5000),
    ("patient_cancelled", 2, 6000, 6000, 0),                # never more than was paid
    ("no_show", None, DEPOSIT, 10000, 5000),                # a late cancellation
    ("aborted_chargeable", None, DEPOSIT, 10000, 5000),     # not fasted, no escort: a late cancellation
    ("aborted_clinical", None, DEPOSIT, 7500, 7500),        # the dispatch fee
    ("clinic_cancelled", None, DEPOSIT, 0, DEPOSIT),        # full refund
    ("booking_failed", None, DEPOSIT, 0, DEPOSIT),          # a lapsed hold paid late: full refund
    ("patient_declined", None, DEPOSIT, 750, 14250),        # ineligible: all but 5%
    ("no_show", None, 0, 0, 0),                             # nothing paid, nothing kept
])
def test_what_is_kept_and_what_is_refunded(cause, notice_hours, paid, fee, refund):
    decision = decide(POLICY, cause, paid, notice_hours=notice_hours)

    assert (decision.fee_cents, decision.refund_cents) == (fee, refund)
    assert decision.fee_cents + decision.refund_cents == paid
    assert decision.policy_version == POLICY.version


def test_a_waiver_keeps_nothing():
    decision = decide(POLICY, "no_show", DEPOSIT, waived=True)
    assert (decision.fee_cents, decision.refund_cents, decision.waived) == (0, DEPOSIT, True)


def test_the_policy_in_words_names_every_tier_and_amount():
    words = policy_in_words(POLICY)
    assert "48 hours or more" in words and "refunded in full" in words
    assert "$50.00" in words and "$100.00" in words and "$75.00 dispatch fee" in words
    assert "If we cancel, you are refunded in full." in words


@pytest.mark.parametrize("tiers", [
    [{"min_notice_hours": 24, "fee_cents": 5000}, {"min_notice_hours": 48, "fee_cents": 0},
     {"min_notice_hours": 0, "fee_cents": 10000}],                                         # out of order
    [{"min_notice_hours": 48, "fee_cents": 0}, {"min_notice_hours": 24, "fee_cents": 5000}],  # no 0 h tier
    [{"min_notice_hours": 0, "fee_cents": -1}],                                              # negative fee
])
def test_a_policy_with_tiers_that_do_not_cover_every_notice_is_refused(tiers):
    version = {"version": "v1", "effective_from": "2026-11-01T00:00:00Z", "notice_tiers": tiers,
               "dispatch_fee_cents": 7500, "declined_retention_percent": 5, "waivers_per_year": 1}
    with pytest.raises(ConfigurationInvalid):
        VersionedConfig.from_document("fees", {"versions": [version]}, FeePolicySchema())
