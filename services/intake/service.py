"""Intake: registration, screening, contraindication rules, referral, consent and the clinician review queue,
answering who may book. A thin Nameko shell around ``domain`` and ``chart``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from pymongo.errors import DuplicateKeyError

import services.intake.events  # noqa: F401  (registers the event schemas)
from chassis.clock import utcnow
from chassis.errors import Conflict
from chassis.pagination import fetch_page
from chassis.rpc import rpc
from chassis.service import RpcServiceBase, validated
from chassis.store import Store
from services.intake.chart import (
    CHART_KEYS,
    Clinic,
    ReviewNotFound,
    chart_of,
    clinical_reasons,
    decide_review,
    latest_decision,
    open_review_of,
    record_referral,
    revoke_consent,
    sign_consent,
    submit_screening,
)
from services.intake.consents import ConsentSignatureSchema, consent_state, consent_text
from services.intake.contraindications import explained
from services.intake.dependencies import ClinicConfiguration, create_indexes
from services.intake.domain import REASON_TEXTS, booking_eligibility, needs_clearance, today_where_they_live
from services.intake.exceptions import EmailTaken, PatientAlreadyRegistered, PatientNotFound
from services.intake.referrals import ReferralSchema
from services.intake.reviews import ReviewDecisionSchema
from services.intake.schemas import (
    ClinicianAssignmentSchema,
    ConsentDocumentSchema,
    ConsentSchema,
    EligibilityExplanationSchema,
    EligibilitySchema,
    PatientRegistrationSchema,
    PatientSchema,
    PatientScreeningSchema,
    PatientUpdateSchema,
    ReferralResultSchema,
    ReviewFileSchema,
    ReviewSchema,
    ScreeningReceiptSchema,
    ScreeningSchema,
    ScreeningSubmissionSchema,
    SuperbillFactsSchema,
)

CLINIC = ClinicConfiguration()
CARE_TEAM_LIMIT = 1000
CHANGE_ATTEMPTS = 8
#: Fields of ``patient.updated`` (non-clinical), as named in the event and where they are in the record.
UPDATED_FIELDS = {"first_name": ("first_name",), "last_name": ("last_name",), "email": ("email",),
                  "phone": ("phone",), "time_zone": ("time_zone",), "sms_opt_in": ("sms_opt_in",),
                  "locale": ("locale",), "state": ("address", "state"), "postal_code": ("address", "postal_code")}

Change = tuple[dict[str, Any], list[tuple[str, dict[str, Any]]], dict[str, Any]]


class PatientRecordBusy(Conflict):
    code = "patient_record_busy"


class IntakeService(RpcServiceBase):
    name = "intake"

    store = Store("intake", indexes=create_indexes, outbox=("patients",))

    # --- registration --------------------------------------------------------------------------------------

    @rpc
    def register_patient(self, registration: dict[str, Any]) -> dict[str, Any]:
        patient = validated(PatientRegistrationSchema(), registration)
        patient.update(_id=self.store.creation_id("pat"), email=patient["email"].lower(), registered_at=utcnow(),
                       clinician_id=None, revision=0, **chart_of({}))
        stored = {**patient, "date_of_birth": patient["date_of_birth"].isoformat()}
        registered = self.store.event("patient.registered", {
            "patient_id": patient["_id"], "first_name": patient["first_name"], "email": patient["email"],
            "phone": patient["phone"], "time_zone": patient["time_zone"], "sms_opt_in": patient["sms_opt_in"],
            "locale": patient["locale"],
        })
        try:
            self.store.insert_with_events("patients", stored, [registered])
        except DuplicateKeyError as exc:
            if self.store.db.patients.find_one({"_id": patient["_id"]}, {"_id": 1}) is not None:
                return self.get_patient(patient["_id"])  # the same operation again: its first answer
            # Says nothing of the existing record (not its id, name or status) to whoever is asking.
            raise PatientAlreadyRegistered("this email address cannot be used for a new registration; sign in "
                                           "or reset your password instead") from exc
        return PatientSchema().dump(patient)

    @rpc
    def get_patient(self, patient_id: str) -> dict[str, Any]:
        return PatientSchema().dump(self._patient(patient_id))

    @rpc
    def update_patient(self, patient_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Contact and address changes; ``patient.updated`` carries only the changed non-clinical fields."""
        # Any top-level field may be left out; a nested one (address, escort) is given whole.
        wanted = validated(PatientUpdateSchema(partial=tuple(PatientUpdateSchema._declared_fields)), changes)
        if "email" in wanted:
            wanted["email"] = wanted["email"].lower()
        patient = self._patient(patient_id)
        changed = {name: _at(wanted, path) for name, path in UPDATED_FIELDS.items()
                   if _at(wanted, path) is not None and _at(wanted, path) != _at(patient, path)}
        events = [self.store.event("patient.updated", {"patient_id": patient["_id"], **changed})] if changed else []
        try:
            written = self.store.update_with_events("patients", {"_id": patient["_id"],
                                                                 "revision": patient.get("revision")},
                                                    {"$set": wanted, "$inc": {"revision": 1}}, events)
        except DuplicateKeyError as exc:
            raise EmailTaken("this email address cannot be used", errors={"email": ["Cannot be used."]}) from exc
        if written.matched_count == 0:
            raise PatientRecordBusy("the patient's record changed meanwhile; try again", retry_after=1)
        return self.get_patient(patient_id)

    @rpc
    def assign_clinician(self, patient_id: str, clinician_id: str) -> dict[str, Any]:
        """Make a clinician responsible for a patient (their care team, which decides who may read them)."""
        clinician_id = validated(ClinicianAssignmentSchema(), {"clinician_id": clinician_id})["clinician_id"]
        assigned = self.store.db.patients.update_one({"_id": str(patient_id)}, {"$set": {"clinician_id": clinician_id}})
        if assigned.matched_count == 0:
            raise PatientNotFound(f"no patient {patient_id}", patient_id=patient_id)
        return PatientSchema().dump(self._patient(patient_id))

    @rpc
    def care_team(self, patient_id: str) -> dict[str, Any]:
        """Who looks after a patient: only ids, no health data (the gateway's access checks ask this)."""
        patient = self.store.db.patients.find_one({"_id": str(patient_id)}, {"clinician_id": 1})
        if patient is None:
            raise PatientNotFound(f"no patient {patient_id}", patient_id=patient_id)
        return {"patient_id": patient_id, "clinician_id": patient.get("clinician_id")}

    @rpc
    def patients_in_care_of(self, clinician_id: str) -> list[str]:
        """The ids of the patients a clinician is responsible for (at most ``CARE_TEAM_LIMIT``)."""
        found = self.store.db.patients.find({"clinician_id": str(clinician_id)}, {"_id": 1}).sort("_id", 1)
        return [patient["_id"] for patient in found.limit(CARE_TEAM_LIMIT)]

    # --- screening -----------------------------------------------------------------------------------------

    @rpc
    def list_questionnaires(self) -> dict[str, Any]:
        """The instruments in force, for the website to render (items, answer range and labels)."""
        instruments = CLINIC.in_force().instruments
        return {"version": instruments.version, "required": instruments["required_before_review"],
                "items": [{key: form[key] for key in ("code", "title", "instructions", "answers", "items")}
                          for form in instruments["instruments"]]}

    @rpc
    def submit_screening(self, patient_id: str, submission: dict[str, Any]) -> dict[str, Any]:
        """Keep and score a questionnaire. After a risk answer the patient is given crisis resources and told a
        clinician will contact them: never a decision."""
        wanted = validated(ScreeningSubmissionSchema(), submission)
        screening_id = self.store.creation_id("scr")
        clinic = CLINIC.in_force()
        _, screening = self._change(patient_id, lambda patient: submit_screening(
            patient, screening_id, wanted["instrument"], wanted["answers"], clinic, utcnow()))
        receipt = {**screening, "patient_id": patient_id}
        if screening["risk_items"]:
            receipt.update(message="Thank you for telling us. A clinician will contact you soon. If you are in "
                                   "crisis or thinking about harming yourself, reach out now:",
                           crisis_resources=clinic.instruments["crisis_resources"])
        else:
            receipt["message"] = "Thank you: your answers were received."
        return ScreeningReceiptSchema().dump(receipt)

    @rpc
    def list_screenings(self, patient_id: str, audience: str = "patient") -> dict[str, Any]:
        """The patient's submissions, newest first: with answers and scores for clinicians only."""
        schema = ScreeningSchema() if audience == "clinician" else PatientScreeningSchema()
        screenings = chart_of(self._patient(patient_id))["screenings"]
        return {"items": [schema.dump({**s, "patient_id": patient_id}) for s in reversed(screenings)]}

    # --- referral and consent ------------------------------------------------------------------------------

    @rpc
    def record_referral(self, patient_id: str, referral: dict[str, Any], recorded_by: str) -> dict[str, Any]:
        wanted = validated(ReferralSchema(), referral)
        referral_id = self.store.creation_id("ref")
        clinic = CLINIC.in_force()
        _, stored = self._change(patient_id, lambda patient: record_referral(
            patient, referral_id, wanted, recorded_by, clinic, utcnow()))
        return ReferralResultSchema().dump({**stored, "patient_id": patient_id})

    @rpc
    def current_consent_document(self) -> dict[str, Any]:
        document = CLINIC.in_force().consent_document
        return ConsentDocumentSchema().dump({"version": document.version, "effective_from": document.effective_from,
                                             "title": document["title"], "text": consent_text(document)})

    @rpc
    def sign_consent(self, patient_id: str, signature: dict[str, Any]) -> dict[str, Any]:
        """Record a signature of the current consent document with the time, IP and user agent."""
        wanted = validated(ConsentSignatureSchema(), signature)
        consent_id = self.store.creation_id("con")
        clinic = CLINIC.in_force()
        _, consent = self._change(patient_id, lambda patient: sign_consent(
            patient, consent_id, wanted, clinic, utcnow()))
        return ConsentSchema().dump({**consent, "patient_id": patient_id})

    @rpc
    def revoke_consent(self, patient_id: str, consent_id: str) -> dict[str, Any]:
        """Withdraw a consent: no infusion can be booked at once; ``consent.revoked`` makes scheduling cancel the
        future ones."""
        clinic = CLINIC.in_force()
        _, consent = self._change(patient_id, lambda patient: revoke_consent(
            patient, str(consent_id), clinic, utcnow()))
        return ConsentSchema().dump({**consent, "patient_id": patient_id})

    # --- eligibility ---------------------------------------------------------------------------------------

    @rpc
    def booking_eligibility(self, patient_id: str, visit_type: str | None = None) -> dict[str, Any]:
        """May this patient book a visit of ``visit_type`` now (None: an infusion)? Asked by scheduling before
        every hold and booking; answered from the record as it is now."""
        patient = self._patient(patient_id)
        clinic = CLINIC.in_force()
        decision = self._eligibility(patient, clinic, visit_type)
        return EligibilitySchema().dump({
            "patient_id": patient_id, "eligible": decision.eligible, "reasons": decision.reasons,
            "rules_version": decision.rules_version, "state": patient["address"]["state"],
            "postal_code": patient["address"]["postal_code"], "location": patient["address"].get("location"),
            "time_zone": patient["time_zone"],
        })

    @rpc
    def explain_eligibility(self, patient_id: str, audience: str = "patient") -> dict[str, Any]:
        """The eligibility to book an infusion in words: for a patient, plain words without any condition named
        (and, with an urgent review open, crisis resources instead of anything else); for clinicians, the
        rules that fired with their inputs and the rule-set version, and the treatment plan."""
        patient = self._patient(patient_id)
        clinic = CLINIC.in_force()
        decision = self._eligibility(patient, clinic, None)
        chart = chart_of(patient)
        screened = latest_decision(chart)
        review = open_review_of(chart)
        reasons = decision.reasons
        if audience != "clinician" and review is not None and review["urgent"]:
            reasons = ["urgent_review_open"]  # no decision while a clinician has not seen the risk answer
        answer: dict[str, Any] = {
            "patient_id": patient_id, "status": chart["status"], "eligible": decision.eligible, "reasons": reasons,
            "explanations": [{"reason": r, "text": REASON_TEXTS.get(r, r)} for r in reasons],
            "rules_version": decision.rules_version,
        }
        if "urgent_review_open" in reasons:
            answer["crisis_resources"] = clinic.instruments["crisis_resources"]
        elif screened is not None or audience == "clinician":
            answer["contraindications"] = _explained_decision(screened, audience)
        if audience == "clinician":
            answer["treatment_plan"] = chart["treatment_plan"]
        return EligibilityExplanationSchema().dump(answer)

    # --- the review queue ----------------------------------------------------------------------------------

    @rpc
    def list_reviews(self, clinician_id: str | None = None, patient_id: str | None = None,
                     cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """Open reviews, urgent first, then oldest; a clinician's only for the patients in their care."""
        query: dict[str, Any] = {"review_queue_key": {"$ne": None}}
        if clinician_id is not None:
            query["clinician_id"] = str(clinician_id)
        if patient_id is not None:
            query["_id"] = str(patient_id)
        page = fetch_page(self.store.db.patients, query, "review_queue_key", cursor=cursor, limit=limit,
                          projection={"reviews": 1, "open_review_id": 1, "review_queue_key": 1, "clinician_id": 1},
                          to_item=lambda patient: self._review_summary(patient, patient["open_review_id"]))
        return {"items": page.items, "next_cursor": page.next_cursor}

    @rpc
    def get_review(self, review_id: str) -> dict[str, Any]:
        """Everything the decision needs: the registration, every screening with its scores, the rules that
        fired with their inputs, consents, referrals, and the protocols and decline reasons to choose from."""
        patient = self._patient_of_review(review_id)
        chart = chart_of(patient)
        clinic = CLINIC.in_force()
        return ReviewFileSchema().dump({
            "review": _review_of(patient, review_id),
            "patient": patient,
            "screenings": [{**s, "patient_id": patient["_id"]} for s in reversed(chart["screenings"])],
            "contraindications": _explained_decision(latest_decision(chart), "clinician"),
            "consent": consent_state(chart["consents"], clinic.consent_document.version),
            "consents": [{**c, "patient_id": patient["_id"]} for c in chart["consents"]],
            "referrals": [{**r, "patient_id": patient["_id"]} for r in chart["referrals"]],
            "protocols": clinic.protocols["protocols"], "decline_reasons": clinic.protocols["decline_reasons"],
        })

    @rpc
    def review_patient(self, review_id: str) -> dict[str, Any]:
        """Whose review this is (ids only), for the gateway's access check before it opens or decides one."""
        patient = self._patient_of_review(review_id)
        return {"review_id": review_id, "patient_id": patient["_id"], "clinician_id": patient.get("clinician_id")}

    @rpc
    def decide_review(self, review_id: str, decision: dict[str, Any], decided_by: str, role: str) -> dict[str, Any]:
        """Approve with a treatment plan, or decline with a reason: the patient's responsible clinician or an
        admin only; a review is decided once."""
        wanted = validated(ReviewDecisionSchema(), decision)
        patient_id = self._patient_of_review(review_id)["_id"]
        clinic = CLINIC.in_force()
        patient, _ = self._change(patient_id, lambda patient: decide_review(
            patient, str(review_id), wanted, str(decided_by), str(role), clinic, utcnow()))
        return self._review_summary(patient, review_id)

    # --- billing ---------------------------------------------------------------------------------------------

    @rpc
    def superbill_facts(self, patient_id: str) -> dict[str, Any]:
        """What a superbill shows (for rendering only; the caller does not store it): name, birth date, address,
        the referring clinician and NPI, and the diagnosis codes of the latest referral."""
        patient = self._patient(patient_id)
        referrals = chart_of(patient)["referrals"]
        latest = referrals[-1] if referrals else None
        return SuperbillFactsSchema().dump({
            "patient_id": patient["_id"], "name": f"{patient['first_name']} {patient['last_name']}",
            "date_of_birth": patient["date_of_birth"], "address": patient["address"],
            "referring": latest and {"name": latest["clinician_name"], "npi": latest["npi"]},
            "icd10_codes": latest["icd10_codes"] if latest else [],
        })

    # --- helpers -----------------------------------------------------------------------------------------------

    def _eligibility(self, patient: dict[str, Any], clinic: Clinic, visit_type: str | None) -> Any:
        today = today_where_they_live(patient["time_zone"], utcnow())
        clinical = clinical_reasons(chart_of(patient), clinic) if needs_clearance(visit_type,
                                                                                  clinic.booking_rules) else []
        return booking_eligibility(patient, clinic.booking_rules, today, clinical)

    def _change(self, patient_id: str, use_case: Callable[[dict[str, Any]], Change]) -> tuple[dict, dict]:
        """Apply a use case of ``chart`` to the patient's record: its chart and events written in one update,
        on condition that the record has not changed since it was read (else read again and retry)."""
        for _ in range(CHANGE_ATTEMPTS):
            patient = self._patient(patient_id)
            chart, events, result = use_case(patient)
            if not events and chart == chart_of(patient):
                return patient, result
            revision = patient.get("revision")
            written = self.store.update_with_events(
                "patients", {"_id": patient["_id"], "revision": revision},
                {"$set": {**{key: chart[key] for key in CHART_KEYS}, "revision": (revision or 0) + 1}},
                [self.store.event(event_type, payload) for event_type, payload in events])
            if written.matched_count == 1:
                return {**patient, **chart}, result
        raise PatientRecordBusy("the patient's record is changing; try again", retry_after=1)

    def _review_summary(self, patient: dict[str, Any], review_id: str) -> dict[str, Any]:
        return ReviewSchema().dump(_review_of(patient, review_id))

    def _patient_of_review(self, review_id: str) -> dict[str, Any]:
        found = self.store.db.patients.find_one({"reviews.id": str(review_id)}, {"_id": 1})
        if found is None:
            raise ReviewNotFound(f"no review {review_id}", review_id=review_id)
        return self._patient(found["_id"])

    def _patient(self, patient_id: str) -> dict[str, Any]:
        patient = self.store.db.patients.find_one({"_id": str(patient_id)}, {"outbox": 0})
        if patient is None:
            raise PatientNotFound(f"no patient {patient_id}", patient_id=patient_id)
        patient["date_of_birth"] = date.fromisoformat(patient["date_of_birth"])
        return patient


def _review_of(patient: dict[str, Any], review_id: str) -> dict[str, Any]:
    """One of the patient's reviews, with the clinician responsible for the patient now."""
    review = next((r for r in chart_of(patient)["reviews"] if r["id"] == review_id), None)
    if review is None:
        raise ReviewNotFound(f"no review {review_id}", review_id=review_id)
    return {**review, "clinician_id": patient.get("clinician_id")}


def _explained_decision(decision: dict[str, Any] | None, audience: str) -> dict[str, Any] | None:
    """A contraindication decision with its fired rules in words for ``audience``, by the rule set it used."""
    if decision is None:
        return None
    rules = CLINIC.contraindication_rules(decision["rules_version"])
    return {**decision, "fired": explained(decision["fired"], rules, audience)}


def _at(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record
