"""A patient's clinical path as plain functions over their record: registered -> screened -> in_review ->
cleared or declined, and the booking reasons it gives at each step.

A program may decline (an absolute contraindication) but never clears: only a clinician's approval does. A
suicide-risk answer opens an urgent review at once and never ends in an automatic decision.
"""

import dataclasses
from datetime import UTC, date, datetime

import pytest

from chassis.config import ConfigVersion
from chassis.errors import InvalidInput
from services.intake.chart import (
    AbsoluteContraindication,
    NotResponsibleClinician,
    ReviewAlreadyDecided,
    ScreeningIncomplete,
    chart_of,
    clinical_reasons,
    decide_review,
    record_referral,
    revoke_consent,
    sign_consent,
    submit_screening,
)
from services.intake.dependencies import ClinicConfiguration
from services.intake.domain import needs_clearance
from services.intake.walkthrough import STANDARD_PLAN, UNREMARKABLE_ANSWERS

CLINIC = ClinicConfiguration().in_force()
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
APPROVE = {"decision": "approve", "plan": STANDARD_PLAN}


def a_patient(**fields) -> dict:
    return {"_id": "pat_ana", "clinician_id": "clin_rivera", "weight_kg": 70.0, "date_of_birth": date(1985, 4, 2),
            "allergies": [], "medications": {"text": "", "names": []}, **chart_of({}), **fields}


class Record:
    """The patient's record as the service keeps it: each use case's chart written back, events collected."""

    def __init__(self, clinic=CLINIC, **fields) -> None:
        self.patient = a_patient(**fields)
        self.clinic = clinic
        self.events: list[tuple[str, dict]] = []
        self._ids = iter(range(1, 1000))

    def apply(self, use_case, *args):
        chart, events, result = use_case(self.patient, *args, self.clinic, NOW)
        self.patient.update(chart)
        self.events += events
        return result

    def screen(self, instrument: str, **answers: int) -> dict:
        return self.apply(submit_screening, f"scr_{next(self._ids)}", instrument,
                          {**UNREMARKABLE_ANSWERS.get(instrument, {}), **answers})

    def screen_all(self, **history: int) -> None:
        for instrument in UNREMARKABLE_ANSWERS:
            self.screen(instrument, **(history if instrument == "health-history" else {}))

    def consent(self, version: str | None = None) -> dict:
        return self.apply(sign_consent, f"con_{next(self._ids)}",
                          {"document_version": version or self.clinic.consent_document.version})

    def decide(self, decision=APPROVE, by="clin_rivera", role="clinician", review_id=None) -> dict:
        review_id = review_id or self.patient["open_review_id"]
        chart, events, review = decide_review(self.patient, review_id, decision, by, role, self.clinic, NOW)
        self.patient.update(chart)
        self.events += events
        return review

    @property
    def status(self) -> str:
        return self.patient["status"]

    @property
    def reasons(self) -> list[str]:
        return clinical_reasons(chart_of(self.patient), self.clinic)

    def event_types(self) -> list[str]:
        return [event_type for event_type, _ in self.events]


def test_screened_consented_and_approved_by_a_clinician_the_patient_is_cleared():
    ana = Record()
    assert (ana.status, ana.reasons) == ("registered", ["screening_incomplete", "consent_missing", "not_cleared"])

    ana.screen_all()
    assert (ana.status, ana.reasons) == ("screened", ["consent_missing", "not_cleared"])

    ana.consent()
    assert (ana.status, ana.reasons) == ("in_review", ["review_pending", "not_cleared"])
    review = next(payload for kind, payload in ana.events if kind == "review.requested")
    assert review == {"review_id": ana.patient["open_review_id"], "patient_id": "pat_ana", "urgent": False,
                      "clinician_id": "clin_rivera"}

    decided = ana.decide()
    assert (ana.status, ana.reasons) == ("cleared", [])
    assert decided["decision"]["plan"]["dose_mg"] == 35.0  # 0.5 mg/kg for 70 kg
    assert ana.events[-1] == ("patient.cleared", {"patient_id": "pat_ana", "review_id": decided["id"],
                                                  "protocol_code": "depression-induction", "planned_sessions": 6})
    assert ana.event_types().count("screening.submitted") == 3 and "consent.signed" in ana.event_types()


def test_events_carry_no_answers_scores_or_conditions():
    ana = Record()
    ana.screen_all(seizures=1)
    ana.consent()
    ana.decide()
    allowed = {"patient_id", "screening_id", "instrument", "submitted_at", "review_id", "urgent", "clinician_id",
               "protocol_code", "planned_sessions", "consent_id", "document_version", "reason_code"}
    for _, payload in ana.events:
        assert set(payload) <= allowed


@pytest.mark.parametrize(("instrument", "answers"), [
    ("phq-9", {"phq9_9": 1}),
    ("risk-screen", {"risk_1": 1}),
    ("risk-screen", {"risk_6": 1}),
])
def test_a_risk_answer_opens_an_urgent_review_at_once_and_nothing_is_decided_automatically(instrument, answers):
    ana = Record()
    ana.screen(instrument, **answers)

    assert ana.status == "in_review"
    assert ana.reasons[0] == "urgent_review_open"
    assert ana.events[-1][0] == "review.requested" and ana.events[-1][1]["urgent"] is True
    ana.screen_all()
    ana.consent()
    # Everything else in order, still no decision but a clinician's: the review stays open and urgent.
    assert "urgent_review_open" in ana.reasons and ana.status == "in_review"
    assert not {"patient.cleared", "patient.declined"} & set(ana.event_types())
    assert ana.event_types().count("review.requested") == 1  # the one urgent review, not a second routine one
    ana.decide()
    assert (ana.status, ana.reasons) == ("cleared", [])


def test_a_risk_answer_after_clearance_blocks_booking_until_a_clinician_decides_again():
    ana = Record()
    ana.screen_all()
    ana.consent()
    ana.decide()
    ana.screen("phq-9", phq9_9=2)
    assert ana.status == "in_review" and ana.reasons == ["urgent_review_open"]
    ana.decide({"decision": "decline", "reason_code": "suicide_risk_needs_other_care"})
    assert (ana.status, ana.reasons) == ("declined", ["declined"])
    assert ana.events[-1][1]["reason_code"] == "clinical"  # what other services learn: no health fact


def test_a_decline_reason_that_says_nothing_of_health_is_shared_as_it_is():
    ana = Record()
    ana.screen_all()
    ana.consent()
    ana.decide({"decision": "decline", "reason_code": "patient_withdrew"})
    assert ana.events[-1] == ("patient.declined", {"patient_id": "pat_ana", "review_id": ana.events[-1][1]["review_id"],
                                                   "reason_code": "patient_withdrew"})


def test_a_routine_review_becomes_urgent_when_a_risk_answer_arrives():
    ana = Record()
    ana.screen_all()
    ana.consent()
    review_id = ana.patient["open_review_id"]
    ana.screen("risk-screen", risk_2=1)
    assert ana.patient["open_review_id"] == review_id
    assert ana.reasons[0] == "urgent_review_open"
    assert [p["urgent"] for kind, p in ana.events if kind == "review.requested"] == [False, True]


def test_an_absolute_contraindication_declines_without_a_review_and_cannot_be_approved():
    ana = Record()
    ana.screen_all(pregnant=1)
    assert (ana.status, ana.reasons[0]) == ("declined", "declined")
    assert ana.events[-1] == ("patient.declined", {"patient_id": "pat_ana", "review_id": None,
                                                   "reason_code": "clinical"})  # the contraindication stays here
    ana.consent()
    assert ana.patient["open_review_id"] is None
    decision = ana.patient["contraindication_decisions"][-1]
    assert decision["rules_version"] == CLINIC.contraindications.version
    assert decision["fired"] == [{"code": "pregnancy_or_breastfeeding", "kind": "absolute",
                                  "inputs": {"health-history.pregnant": 1}}]


def test_an_urgent_review_of_a_patient_with_an_absolute_contraindication_may_only_be_declined():
    ana = Record()
    ana.screen("risk-screen", risk_1=1)
    ana.screen_all(psychosis=1)
    with pytest.raises(AbsoluteContraindication):
        ana.decide()
    ana.decide({"decision": "decline", "reason_code": "contraindication"})
    assert ana.status == "declined"


def test_a_risk_answer_with_an_absolute_contraindication_waits_for_a_clinician_and_no_program_declines():
    ana = Record()
    ana.screen("risk-screen", risk_1=1)
    ana.screen_all(psychosis=1)
    assert "patient.declined" not in [kind for kind, _ in ana.events]  # no "we cannot treat you" message either
    assert (ana.status, ana.reasons[0]) == ("in_review", "urgent_review_open")
    review = next(r for r in ana.patient["reviews"] if r["id"] == ana.patient["open_review_id"])
    assert review["urgent"] and "psychosis_or_schizophrenia" in review["reasons"]


def test_a_new_relative_finding_after_clearance_sends_the_patient_back_to_a_clinician():
    ana = Record()
    ana.screen_all()
    ana.consent()
    ana.decide()
    assert ana.status == "cleared" and ana.reasons == []

    ana.screen_all(seizures=1)  # later, the patient reports seizures

    assert (ana.status, ana.reasons) == ("in_review", ["review_pending"])
    review = next(r for r in ana.patient["reviews"] if r["id"] == ana.patient["open_review_id"])
    assert review["reasons"] == ["seizures"] and not review["urgent"]
    ana.decide()
    ana.screen_all(seizures=1)  # the same answers again: the clinician has weighed them
    assert (ana.status, ana.patient["open_review_id"]) == ("cleared", None)


def test_relative_contraindications_are_the_reasons_of_the_review():
    ana = Record(medications={"text": "clonazepam at night", "names": ["clonazepam"]})
    ana.screen_all(thyroid_disease=1)
    ana.consent()
    review = next(r for r in ana.patient["reviews"] if r["id"] == ana.patient["open_review_id"])
    assert review["reasons"] == ["benzodiazepines", "thyroid_disease"]


def test_only_the_responsible_clinician_or_an_admin_decides_and_only_once():
    ana = Record()
    ana.screen_all()
    ana.consent()
    with pytest.raises(NotResponsibleClinician) as refused:
        ana.decide(by="clin_other")
    assert refused.value.status == 403
    review = ana.decide(by="ops-1", role="admin")
    with pytest.raises(ReviewAlreadyDecided) as again:
        ana.decide(review_id=review["id"])
    assert again.value.status == 409


def test_approval_needs_the_screening_complete():
    ana = Record()
    ana.screen("phq-9", phq9_9=1)
    with pytest.raises(ScreeningIncomplete):
        ana.decide()


@pytest.mark.parametrize(("plan", "field"), [
    ({"protocol_code": "depression-induction", "dose_mg_per_kg": 0.9}, "dose_mg_per_kg"),
    ({"protocol_code": "depression-induction", "dose_mg_per_kg": 0.05}, "dose_mg_per_kg"),
    ({"protocol_code": "chronic-pain", "dose_mg_per_kg": 1.0, "planned_sessions": 9}, "planned_sessions"),
    ({"protocol_code": "microdosing", "dose_mg_per_kg": 0.5}, "protocol_code"),
])
def test_a_plan_outside_its_protocol_is_refused_and_nothing_changes(plan, field):
    ana = Record()
    ana.screen_all()
    ana.consent()
    before = dict(ana.patient)
    with pytest.raises(InvalidInput) as refused:
        ana.decide({"decision": "approve", "plan": plan})
    assert list(refused.value.details["errors"]["plan"]) == [field]
    assert ana.patient == before


def test_a_decline_reason_must_be_one_the_clinic_configured():
    ana = Record()
    ana.screen_all()
    ana.consent()
    with pytest.raises(InvalidInput):
        ana.decide({"decision": "decline", "reason_code": "because"})


def test_consent_is_to_the_current_version_and_revoking_it_blocks_booking_at_once():
    ana = Record()
    with pytest.raises(InvalidInput) as refused:
        ana.consent(version="2020-01-01")
    assert list(refused.value.details["errors"]) == ["document_version"]
    ana.screen_all()
    consent = ana.consent()
    ana.decide()
    assert ana.reasons == []

    ana.apply(revoke_consent, consent["id"])
    assert ana.reasons == ["consent_revoked"]
    assert ana.events[-1] == ("consent.revoked", {"patient_id": "pat_ana", "consent_id": consent["id"]})
    ana.apply(revoke_consent, consent["id"])  # again: the same answer, no second event
    assert ana.event_types().count("consent.revoked") == 1
    ana.consent()
    assert ana.reasons == []


def test_revoking_withdraws_every_signature_still_standing():
    ana = Record()
    ana.screen_all()
    first, second = ana.consent(), ana.consent()
    ana.decide()
    ana.apply(revoke_consent, second["id"])
    assert ana.reasons == ["consent_revoked"]
    revoked = {p["consent_id"] for kind, p in ana.events if kind == "consent.revoked"}
    assert revoked == {first["id"], second["id"]}


def test_a_new_consent_version_makes_the_patient_sign_again():
    ana = Record()
    ana.screen_all()
    ana.consent()
    ana.decide()
    newer = ConfigVersion("2027-01-01", NOW, {"title": "Consent, revised", "file": "consent/2026-11-01.md"})
    ana.clinic = dataclasses.replace(CLINIC, consent_document=newer)
    assert ana.reasons == ["consent_outdated"]
    ana.consent()
    assert ana.reasons == []


def test_where_the_clinic_requires_a_referral_the_review_waits_for_it():
    rules = CLINIC.booking_rules
    strict = dataclasses.replace(CLINIC, booking_rules=ConfigVersion(
        rules.version, rules.effective_from, {**rules.settings, "referral_required": True}))
    ana = Record(clinic=strict)
    ana.screen_all()
    ana.consent()
    assert (ana.status, ana.reasons) == ("screened", ["referral_missing", "not_cleared"])
    ana.apply(record_referral, "ref_1", {"kind": "telehealth_evaluation", "clinician_name": "Dr. Park",
                                         "npi": "1234567893", "icd10_codes": ["F33.1"],
                                         "document_reference": "eval-1"}, "clin_park")
    assert (ana.status, ana.reasons) == ("in_review", ["review_pending", "not_cleared"])


def test_the_same_submission_twice_is_kept_once():
    ana = Record()
    first = ana.apply(submit_screening, "scr_same", "gad-7", {f"gad7_{n}": 1 for n in range(1, 8)})
    again = ana.apply(submit_screening, "scr_same", "gad-7", {f"gad7_{n}": 1 for n in range(1, 8)})
    assert first == again and len(ana.patient["screenings"]) == 1 and len(ana.events) == 1


@pytest.mark.parametrize(("visit_type", "needs"), [("consult", False), ("iv-mood", True), ("iv-pain", True),
                                                    (None, True)])
def test_the_free_consultation_needs_no_clearance(visit_type, needs):
    assert needs_clearance(visit_type, CLINIC.booking_rules) is needs
