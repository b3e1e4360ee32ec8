"""Intake: registration and who may book. A thin Nameko shell around ``domain``."""

from __future__ import annotations

from datetime import date
from typing import Any

from pymongo.errors import DuplicateKeyError

import services.intake.events  # noqa: F401  (registers the event schemas)
from chassis.clock import utcnow
from chassis.ids import new_id
from chassis.rpc import rpc
from chassis.service import RpcServiceBase, validated
from chassis.store import Store
from services.intake.dependencies import create_indexes, load_booking_rules
from services.intake.domain import booking_eligibility, today_where_they_live
from services.intake.exceptions import PatientAlreadyRegistered, PatientNotFound
from services.intake.schemas import (
    ClinicianAssignmentSchema,
    EligibilitySchema,
    PatientRegistrationSchema,
    PatientSchema,
)

BOOKING_RULES = load_booking_rules()
CARE_TEAM_LIMIT = 1000


class IntakeService(RpcServiceBase):
    name = "intake"

    store = Store("intake", indexes=create_indexes, outbox=("patients",))

    @rpc
    def register_patient(self, registration: dict[str, Any]) -> dict[str, Any]:
        patient = validated(PatientRegistrationSchema(), registration)
        patient.update(_id=new_id("pat"), email=patient["email"].lower(), status="registered",
                       registered_at=utcnow(), clinician_id=None)
        stored = {**patient, "date_of_birth": patient["date_of_birth"].isoformat()}
        registered = self.store.event("patient.registered", {
            "patient_id": patient["_id"], "first_name": patient["first_name"], "email": patient["email"],
            "phone": patient["phone"], "time_zone": patient["time_zone"], "sms_opt_in": patient["sms_opt_in"],
        })
        try:
            self.store.insert_with_events("patients", stored, [registered])
        except DuplicateKeyError as exc:
            raise PatientAlreadyRegistered("a patient with this email is already registered") from exc
        return PatientSchema().dump(patient)

    @rpc
    def get_patient(self, patient_id: str) -> dict[str, Any]:
        return PatientSchema().dump(self._patient(patient_id))

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

    @rpc
    def booking_eligibility(self, patient_id: str, visit_type: str | None = None) -> dict[str, Any]:
        """May this patient book a home visit (of ``visit_type``) now? Asked by scheduling before every booking."""
        patient = self._patient(patient_id)
        today = today_where_they_live(patient["time_zone"], utcnow())
        decision = booking_eligibility(patient, BOOKING_RULES.effective_at(), today)
        return EligibilitySchema().dump({
            "patient_id": patient_id, "eligible": decision.eligible, "reasons": decision.reasons,
            "rules_version": decision.rules_version, "state": patient["address"]["state"],
            "postal_code": patient["address"]["postal_code"],
            "time_zone": patient["time_zone"],
        })

    def _patient(self, patient_id: str) -> dict[str, Any]:
        patient = self.store.db.patients.find_one({"_id": str(patient_id)}, {"outbox": 0})
        if patient is None:
            raise PatientNotFound(f"no patient {patient_id}", patient_id=patient_id)
        patient["date_of_birth"] = date.fromisoformat(patient["date_of_birth"])
        return patient

