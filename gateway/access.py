"""Who may see which record, beyond the route's roles.

A patient reaches only their own records (the token's subject is their patient id); a nurse only the
visits assigned to them; a clinician only the patients in their care (intake's care team). Staff in
finance and admin are limited by the route's roles alone.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.api import ApiRequest, Forbidden


class CareTeams(Protocol):
    """Intake's answers about who looks after whom (its RPC proxy); asked only for clinicians."""

    def care_team(self, patient_id: str) -> dict[str, Any]: ...

    def patients_in_care_of(self, clinician_id: str) -> list[str]: ...


def require_patient_access(request: ApiRequest, patient_id: str, care_teams: CareTeams) -> None:
    if request.role == "patient" and request.subject != patient_id:
        raise Forbidden("Patients may only reach their own records.")
    if request.role == "clinician" and care_teams.care_team(patient_id)["clinician_id"] != request.subject:
        raise Forbidden("Clinicians may only reach the patients in their care.")


def require_appointment_access(request: ApiRequest, appointment: dict[str, Any], care_teams: CareTeams) -> None:
    require_patient_access(request, appointment["patient_id"], care_teams)
    if request.role == "nurse" and request.subject != appointment["nurse_id"]:
        raise Forbidden("Nurses may only reach the visits assigned to them.")


def scoped_filters(request: ApiRequest, care_teams: CareTeams, **filters: Any) -> dict[str, Any]:
    """List filters narrowed to what the caller may see: a patient's own, a nurse's own, a clinician's
    patients' (``patient_ids`` when no patient is named)."""
    if request.role == "clinician" and "patient_id" in filters:
        if filters["patient_id"] is not None:
            require_patient_access(request, filters["patient_id"], care_teams)
        else:
            filters["patient_ids"] = care_teams.patients_in_care_of(request.subject)
    if request.role == "patient":
        if filters.get("patient_id") not in (None, request.subject):
            raise Forbidden("Patients may only list their own records.")
        filters["patient_id"] = request.subject
    if request.role == "nurse" and "nurse_id" in filters:
        if filters.get("nurse_id") not in (None, request.subject):
            raise Forbidden("Nurses may only list the visits assigned to them.")
        filters["nurse_id"] = request.subject
    return filters
