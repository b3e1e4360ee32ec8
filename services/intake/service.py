"""Intake: registration and who may book. A thin Nameko shell around ``domain``."""

from __future__ import annotations

from datetime import date
from typing import Any

from nameko.rpc import rpc
from pymongo.errors import DuplicateKeyError

import services.intake.events  # noqa: F401  (registers the event schemas)
from chassis.clock import utcnow
from chassis.ids import new_id
from chassis.service import RpcServiceBase, validated
from chassis.store import Store
from services.intake.dependencies import create_indexes, load_booking_rules
from services.intake.domain import booking_eligibility, today_where_they_live
from services.intake.exceptions import PatientAlreadyRegistered, PatientNotFound
from services.intake.schemas import EligibilitySchema, PatientRegistrationSchema, PatientSchema

BOOKING_RULES = load_booking_rules()


class IntakeService(RpcServiceBase):
    name = "intake"

    store = Store("intake", indexes=create_indexes, outbox=("patients",))

    @rpc
    def register_patient(self, registration: dict[str, Any]) -> dict[str, Any]:
        patient = validated(PatientRegistrationSchema(), registration)
        patient.update(_id=new_id("pat"), email=patient["email"].lower(), status="registered",
                       registered_at=utcnow())
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
    def booking_eligibility(self, patient_id: str) -> dict[str, Any]:
        """May this patient book a home visit now? Asked by scheduling before every booking."""
        patient = self._patient(patient_id)
        today = today_where_they_live(patient["time_zone"], utcnow())
        decision = booking_eligibility(patient, BOOKING_RULES.effective_at(), today)
        return EligibilitySchema().dump({
            "patient_id": patient_id, "eligible": decision.eligible, "reasons": decision.reasons,
            "rules_version": decision.rules_version, "state": patient["address"]["state"],
            "time_zone": patient["time_zone"],
        })

    def _patient(self, patient_id: str) -> dict[str, Any]:
        patient = self.store.db.patients.find_one({"_id": str(patient_id)}, {"outbox": 0})
        if patient is None:
            raise PatientNotFound(f"no patient {patient_id}", patient_id=patient_id)
        patient["date_of_birth"] = date.fromisoformat(patient["date_of_birth"])
        return patient

