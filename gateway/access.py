"""Who may see which record, beyond the route's roles.

A patient reaches only their own records (the token's subject is their patient id); a nurse only the
visits assigned to them; a clinician only the patients in their care (intake's care team). Staff in
finance and admin are limited by the route's roles alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.api import ApiRequest, Forbidden

#: Asked only when the caller is a clinician: the clinician responsible for a patient, or None.
ClinicianOf = Callable[[str], str | None]


def require_patient_access(request: ApiRequest, patient_id: str, clinician_of: ClinicianOf) -> None:
    if request.role == "patient" and request.subject != patient_id:
        raise Forbidden("Patients may only reach their own records.")
    if request.role == "clinician" and clinician_of(patient_id) != request.subject:
        raise Forbidden("Clinicians may only reach the patients in their care.")


def require_appointment_access(request: ApiRequest, appointment: dict[str, Any], clinician_of: ClinicianOf) -> None:
    require_patient_access(request, appointment["patient_id"], clinician_of)
    if request.role == "nurse" and request.subject != appointment["nurse_id"]:
        raise Forbidden("Nurses may only reach the visits assigned to them.")


def scoped_filters(request: ApiRequest, **filters: Any) -> dict[str, Any]:
    """List filters narrowed to what the caller may see: a patient's own, a nurse's own."""
    if request.role == "patient":
        if filters.get("patient_id") not in (None, request.subject):
            raise Forbidden("Patients may only list their own records.")
        filters["patient_id"] = request.subject
    if request.role == "nurse" and "nurse_id" in filters:
        if filters.get("nurse_id") not in (None, request.subject):
            raise Forbidden("Nurses may only list the visits assigned to them.")
        filters["nurse_id"] = request.subject
    return filters
