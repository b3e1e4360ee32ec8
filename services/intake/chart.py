"""A patient's clinical path, as plain functions over the patient's record (no Nameko, no store).

The path: ``registered`` -> ``screened`` (every required instrument submitted, no absolute contraindication)
-> ``in_review`` (a clinician review is open: once consent is current and any required referral is in, or at
once and *urgent* for a suicide-risk answer) -> ``cleared`` (approved with a treatment plan) or ``declined``
(by a clinician, or automatically by an absolute contraindication: a program may say no, never yes, and says
nothing at all while a suicide-risk answer waits for a clinician). A relative finding that a cleared patient
reports later, and that no approved review weighed, opens a review again: booking waits for the clinician.

Each use case takes a copy of the record's chart (the keys in ``CHART_KEYS``), changes it and returns the
events the change causes; the service writes the chart and the events in one conditional update.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chassis.config import ConfigVersion
from chassis.errors import Conflict, Forbidden, InvalidInput, NotAllowed, NotFound
from chassis.ids import derived_id
from services.intake.consents import consent_state
from services.intake.contraindications import Facts, evaluate
from services.intake.reviews import checked_decline_reason, shared_decline_reason, treatment_plan
from services.intake.screening import checked_answers, instrument, latest_answers, score, screening_complete

CHART_KEYS = ("status", "screenings", "contraindication_decisions", "consents", "referrals", "reviews",
              "open_review_id", "review_queue_key", "outcome", "treatment_plan")
Event = tuple[str, dict[str, Any]]


class ReviewNotFound(NotFound):
    code = "review_not_found"


class ReviewAlreadyDecided(Conflict):
    code = "review_already_decided"


class NotResponsibleClinician(Forbidden):
    code = "not_responsible_clinician"


class ScreeningIncomplete(NotAllowed):
    code = "screening_incomplete"


class AbsoluteContraindication(NotAllowed):
    code = "absolute_contraindication"


class ConsentNotFound(NotFound):
    code = "consent_not_found"


@dataclass(frozen=True)
class Clinic:
    """The configuration versions in force for one decision."""

    booking_rules: ConfigVersion
    instruments: ConfigVersion
    contraindications: ConfigVersion
    protocols: ConfigVersion
    consent_document: ConfigVersion


def chart_of(patient: dict[str, Any]) -> dict[str, Any]:
    """A copy of the patient's chart, with the defaults of a new registration for anything not there yet."""
    chart = {"status": "registered", "screenings": [], "contraindication_decisions": [], "consents": [],
             "referrals": [], "reviews": [], "open_review_id": None, "review_queue_key": None, "outcome": None,
             "treatment_plan": None}
    chart.update({key: copy.deepcopy(patient[key]) for key in CHART_KEYS if key in patient})
    return chart


def status_of(chart: dict[str, Any]) -> str:
    if chart["open_review_id"]:
        return "in_review"
    if chart["outcome"] in ("cleared", "declined"):
        return chart["outcome"]
    return "screened" if chart["contraindication_decisions"] else "registered"


def open_review_of(chart: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in chart["reviews"] if r["id"] == chart["open_review_id"]), None)


def latest_decision(chart: dict[str, Any]) -> dict[str, Any] | None:
    decisions = chart["contraindication_decisions"]
    return decisions[-1] if decisions else None


def queue_key(review: dict[str, Any]) -> str:
    """Sorts the queue: urgent first, then oldest (UTC times in one fixed format sort as text)."""
    return f"{0 if review['urgent'] else 1}|{review['opened_at'].strftime('%Y-%m-%dT%H:%M:%S.%fZ')}|{review['id']}"


def _request_review(chart: dict[str, Any], patient: dict[str, Any], urgent: bool, reasons: list[str],
                    now: datetime, events: list[Event]) -> None:
    """Open a review, or add to the one open (at most one is open; an urgent reason makes it urgent)."""
    review = open_review_of(chart)
    announce = review is None or (urgent and not review["urgent"])
    if review is None:
        review = {"id": derived_id("rev", patient["_id"], str(len(chart["reviews"]))), "patient_id": patient["_id"],
                  "urgent": urgent, "reasons": [], "status": "open", "opened_at": now,
                  "clinician_id": patient.get("clinician_id"), "decided_at": None, "decided_by": None,
                  "decision": None}
        chart["reviews"].append(review)
        chart["open_review_id"] = review["id"]
    review["urgent"] = review["urgent"] or urgent
    review["reasons"] += [reason for reason in reasons if reason not in review["reasons"]]
    chart["review_queue_key"] = queue_key(review)
    if announce:
        events.append(("review.requested", {"review_id": review["id"], "patient_id": patient["_id"],
                                            "urgent": review["urgent"], "clinician_id": review["clinician_id"]}))


def _not_yet_reviewed(chart: dict[str, Any], relative: list[str]) -> list[str]:
    """The relative findings no approved review has weighed."""
    weighed = {reason for review in chart["reviews"] if review["status"] == "approved" for reason in review["reasons"]}
    return [code for code in relative if code not in weighed]


def _advance(chart: dict[str, Any], patient: dict[str, Any], clinic: Clinic, now: datetime,
             events: list[Event]) -> None:
    """Open the clearance review once the file is complete: screened, consent current, referral if required."""
    decision = latest_decision(chart)
    ready = (chart["outcome"] is None and decision is not None and decision["outcome"] == "review"
             and chart["open_review_id"] is None
             and consent_state(chart["consents"], clinic.consent_document.version) == "current"
             and (chart["referrals"] or not clinic.booking_rules["referral_required"]))
    if ready:
        _request_review(chart, patient, False, decision["relative"] or ["clearance"], now, events)
    chart["status"] = status_of(chart)


def submit_screening(patient: dict[str, Any], screening_id: str, code: str, answers: Any, clinic: Clinic,
                     now: datetime) -> tuple[dict[str, Any], list[Event], dict[str, Any]]:
    """Score a submission and keep it; a risk answer opens an urgent review; once every required instrument is
    in, the contraindication rules decide: decline (absolute) or on to a clinician. Returns the chart, the
    events and the stored screening."""
    chart = chart_of(patient)
    known = next((s for s in chart["screenings"] if s["id"] == screening_id), None)
    if known is not None:  # the same operation again: nothing changes
        return chart, [], known
    form = instrument(clinic.instruments, code)
    checked = checked_answers(form, answers)
    scored = score(form, checked)
    screening = {"id": screening_id, "instrument": code, "instruments_version": clinic.instruments.version,
                 "answers": checked, "total": scored.total, "band": scored.band, "cut_off_met": scored.cut_off_met,
                 "risk_items": scored.risk_items, "submitted_at": now}
    chart["screenings"].append(screening)
    events: list[Event] = [("screening.submitted", {"patient_id": patient["_id"], "screening_id": screening_id,
                                                     "instrument": code, "submitted_at": now})]
    if scored.risk:
        _request_review(chart, patient, True, ["suicide_risk_answer"], now, events)
    if screening_complete(chart["screenings"], clinic.instruments):
        medications = patient.get("medications") or {}
        found = evaluate(clinic.contraindications, Facts(latest_answers(chart["screenings"]),
                                                         medications.get("names", []), patient.get("allergies", [])))
        chart["contraindication_decisions"].append({
            "screening_id": screening_id, "rules_version": found.rules_version, "fired": found.fired,
            "outcome": found.outcome, "relative": found.relative, "absolute": found.absolute, "decided_at": now})
        urgent = open_review_of(chart) is not None and open_review_of(chart)["urgent"]
        if found.absolute and urgent:
            # a risk answer waits for a clinician: no program answers that patient, not even with a no
            _request_review(chart, patient, True, found.absolute, now, events)
        elif found.absolute and chart["outcome"] != "declined":
            chart["outcome"] = "declined"
            events.append(("patient.declined", {"patient_id": patient["_id"], "review_id": None,
                                                "reason_code": shared_decline_reason("contraindication")}))
        elif found.relative and chart["open_review_id"]:
            _request_review(chart, patient, False, found.relative, now, events)
        elif chart["outcome"] == "cleared" and (new := _not_yet_reviewed(chart, found.relative)):
            # a finding the clearance did not weigh: a clinician looks again before the next infusion
            _request_review(chart, patient, False, new, now, events)
    _advance(chart, patient, clinic, now, events)
    return chart, events, screening


def sign_consent(patient: dict[str, Any], consent_id: str, signature: dict[str, Any], clinic: Clinic,
                 now: datetime) -> tuple[dict[str, Any], list[Event], dict[str, Any]]:
    chart = chart_of(patient)
    known = next((c for c in chart["consents"] if c["id"] == consent_id), None)
    if known is not None:
        return chart, [], known
    current = clinic.consent_document.version
    if signature["document_version"] != current:
        raise InvalidInput("not the current consent document", errors={
            "document_version": [f"Version {signature['document_version']} is not the current one ({current})."]})
    consent = {"id": consent_id, "document_version": current, "signed_at": now, "ip": signature.get("ip"),
               "user_agent": signature.get("user_agent"), "revoked_at": None}
    chart["consents"].append(consent)
    events: list[Event] = [("consent.signed", {"patient_id": patient["_id"], "consent_id": consent_id,
                                               "document_version": current})]
    _advance(chart, patient, clinic, now, events)
    return chart, events, consent


def revoke_consent(patient: dict[str, Any], consent_id: str, clinic: Clinic,
                   now: datetime) -> tuple[dict[str, Any], list[Event], dict[str, Any]]:
    """The patient withdraws their consent: the one named and any other still standing (an earlier signature
    must not keep them consented), each announced by ``consent.revoked``."""
    chart = chart_of(patient)
    consent = next((c for c in chart["consents"] if c["id"] == consent_id), None)
    if consent is None:
        raise ConsentNotFound(f"no consent {consent_id} of this patient", consent_id=consent_id)
    events: list[Event] = []
    for standing in chart["consents"]:
        if standing["revoked_at"] is None:  # revoked already: no second event
            standing["revoked_at"] = now
            events.append(("consent.revoked", {"patient_id": patient["_id"], "consent_id": standing["id"]}))
    chart["status"] = status_of(chart)
    return chart, events, consent


def record_referral(patient: dict[str, Any], referral_id: str, referral: dict[str, Any], recorded_by: str,
                    clinic: Clinic, now: datetime) -> tuple[dict[str, Any], list[Event], dict[str, Any]]:
    chart = chart_of(patient)
    known = next((r for r in chart["referrals"] if r["id"] == referral_id), None)
    if known is not None:
        return chart, [], known
    stored = {"id": referral_id, **referral, "recorded_by": recorded_by, "recorded_at": now}
    chart["referrals"].append(stored)
    events: list[Event] = []
    _advance(chart, patient, clinic, now, events)
    return chart, events, stored


def decide_review(patient: dict[str, Any], review_id: str, decision: dict[str, Any], decided_by: str, role: str,
                  clinic: Clinic, now: datetime) -> tuple[dict[str, Any], list[Event], dict[str, Any]]:
    """A clinician's decision on an open review: only the patient's responsible clinician or an admin."""
    chart = chart_of(patient)
    review = next((r for r in chart["reviews"] if r["id"] == review_id), None)
    if review is None:
        raise ReviewNotFound(f"no review {review_id}", review_id=review_id)
    if review["status"] != "open":
        raise ReviewAlreadyDecided(f"review {review_id} was already decided ({review['status']})",
                                   review_id=review_id, errors={"review_id": [f"Already {review['status']}."]})
    if role != "admin" and patient.get("clinician_id") != decided_by:
        raise NotResponsibleClinician("only the patient's responsible clinician or an admin decides", errors={
            "clinician": [f"{decided_by} is not this patient's responsible clinician."]})
    events: list[Event]
    if decision["decision"] == "approve":
        screened = latest_decision(chart)
        if screened is None:
            raise ScreeningIncomplete("the patient has not completed every required screening yet")
        if screened["absolute"]:
            raise AbsoluteContraindication("an absolute contraindication excludes this patient",
                                           rules=screened["absolute"])
        plan = treatment_plan(decision["plan"], clinic.protocols, patient["weight_kg"])
        review.update(status="approved", decision={"decision": "approve", "plan": plan,
                                                   "note": decision.get("note")})
        chart.update(outcome="cleared", treatment_plan=plan)
        events = [("patient.cleared", {"patient_id": patient["_id"], "review_id": review_id,
                                       "protocol_code": plan["protocol_code"],
                                       "planned_sessions": plan["planned_sessions"]})]
    else:
        reason = checked_decline_reason(decision["reason_code"], clinic.protocols)
        review.update(status="declined", decision={"decision": "decline", "reason_code": reason,
                                                   "note": decision.get("note")})
        chart.update(outcome="declined", treatment_plan=None)
        events = [("patient.declined", {"patient_id": patient["_id"], "review_id": review_id,
                                        "reason_code": shared_decline_reason(reason)})]
    review.update(decided_at=now, decided_by=decided_by, decided_by_role=role)
    chart.update(open_review_id=None, review_queue_key=None)
    chart["status"] = status_of(chart)
    return chart, events, review


def clinical_reasons(chart: dict[str, Any], clinic: Clinic) -> list[str]:
    """Why the patient may not book an infusion yet, as stable codes (empty when they may)."""
    reasons = []
    review = open_review_of(chart)
    if review is not None:
        reasons.append("urgent_review_open" if review["urgent"] else "review_pending")
    if chart["outcome"] == "declined":
        reasons.append("declined")
    if not chart["contraindication_decisions"]:
        reasons.append("screening_incomplete")
    consent = consent_state(chart["consents"], clinic.consent_document.version)
    if consent != "current":
        reasons.append(f"consent_{consent}")
    if clinic.booking_rules["referral_required"] and not chart["referrals"]:
        reasons.append("referral_missing")
    if chart["outcome"] is None:
        reasons.append("not_cleared")
    return reasons
