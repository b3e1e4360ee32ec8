"""Who may see which record, beyond the route's roles: patients their own, nurses their visits."""

from __future__ import annotations

from typing import Any

from gateway.api import ApiRequest, Forbidden


def require_own_patient_record(request: ApiRequest, patient_id: str) -> None:
    """A patient reaches only their own records (the token's subject is their patient id)."""
    if request.role == "patient" and request.subject != patient_id:
        raise Forbidden("Patients may only reach their own records.")


def require_appointment_access(request: ApiRequest, appointment: dict[str, Any]) -> None:
    require_own_patient_record(request, appointment["patient_id"])
    if request.role == "nurse" and request.subject != appointment["nurse_id"]:
        raise Forbidden("Nurses may only reach the visits assigned to them.")


def scoped_filters(request: ApiRequest, **filters: str | None) -> dict[str, str | None]:
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
