"""Scheduling: nurses and appointments. A thin Nameko shell around ``domain``."""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError

import services.scheduling.events  # noqa: F401  (registers the event schemas)
from chassis.clock import utcnow
from chassis.pagination import fetch_page
from chassis.rpc import TimedRpcProxy, rpc
from chassis.service import RpcServiceBase, validated
from chassis.store import Store
from services.scheduling.dependencies import create_indexes, load_calendar
from services.scheduling.domain import BookingRefused, nurses_for, patient_slot_keys, slot_keys, visit_window
from services.scheduling.exceptions import (
    AppointmentNotFound,
    InvalidVisitType,
    NoNurseAvailable,
    NurseCannotServePatient,
    NurseNotFound,
    PatientAlreadyBooked,
    PatientNotCleared,
    TimeNotBookable,
)
from services.scheduling.schemas import AppointmentSchema, BookingRequestSchema, NurseSchema

CALENDAR = load_calendar()


class SchedulingService(RpcServiceBase):
    name = "scheduling"

    store = Store("scheduling", indexes=create_indexes, outbox=("appointments",))
    intake = TimedRpcProxy("intake")

    @rpc
    def add_nurse(self, nurse: dict[str, Any]) -> dict[str, Any]:
        """Add or update a nurse (by id): name, states of licence, active."""
        nurse = validated(NurseSchema(), nurse)
        self.store.db.nurses.replace_one({"_id": nurse["_id"]}, nurse, upsert=True)
        return NurseSchema().dump(nurse)

    @rpc
    def list_nurses(self, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """A page of nurses in id order."""
        page = fetch_page(self.store.db.nurses, {}, "_id", cursor=cursor, limit=limit)
        return {"items": NurseSchema(many=True).dump(page.items), "next_cursor": page.next_cursor}

    @rpc
    def book_appointment(self, request: dict[str, Any]) -> dict[str, Any]:
        """Book a home visit: the patient must be cleared by intake and a licensed nurse free."""
        request = validated(BookingRequestSchema(), request)
        # One booking per client operation: its id derives from the operation's key, so a second execution
        # (the client's retry after a timeout, or this request redelivered after a crash) finds the first.
        appointment_id = self.store.creation_id("apt")
        if (first := self._booked_by_this_operation(appointment_id)) is not None:
            return first
        calendar = CALENDAR.effective_at()
        if request["visit_type"] not in calendar["visit_types"]:
            raise InvalidVisitType("unknown visit type", errors={"visit_type": ["unknown visit type"]})
        eligibility = self.intake.booking_eligibility(request["patient_id"], request["visit_type"])
        if not eligibility["eligible"]:
            raise PatientNotCleared("the patient may not book yet", reasons=eligibility["reasons"],
                                    rules_version=eligibility["rules_version"])
        try:
            window = visit_window(calendar, request["visit_type"], request["start_at"],
                                  eligibility["time_zone"], utcnow())
        except BookingRefused as refused:
            raise TimeNotBookable(str(refused), reason=refused.reason) from refused

        nurses = nurses_for(list(self.store.db.nurses.find()), eligibility["state"], request.get("nurse_id"))
        if "nurse_id" in request and not nurses:
            if self.store.db.nurses.count_documents({"_id": request["nurse_id"]}) == 0:
                raise NurseNotFound(f"no nurse {request['nurse_id']}", nurse_id=request["nurse_id"])
            raise NurseCannotServePatient("this nurse is not active or not licensed in the patient's state",
                                          nurse_id=request["nurse_id"], state=eligibility["state"])
        patient_keys = patient_slot_keys(calendar, request["patient_id"], window)
        for nurse in nurses:
            appointment = {
                "_id": appointment_id, "patient_id": request["patient_id"], "nurse_id": nurse["_id"],
                "visit_type": request["visit_type"], "status": "booked",
                "start_at": window.start_at, "end_at": window.end_at, "time_zone": eligibility["time_zone"],
                "local_start": window.local_start.isoformat(), "booked_at": utcnow(),
                "calendar_version": calendar.version, "operation_key": self.store.operation_key,
                "slot_keys": slot_keys(calendar, nurse["_id"], window) + patient_keys,
            }
            booked = self.store.event("appointment.booked", {
                "appointment_id": appointment_id, "patient_id": request["patient_id"], "nurse_id": nurse["_id"],
                "visit_type": request["visit_type"], "start_at": window.start_at, "end_at": window.end_at,
                "time_zone": eligibility["time_zone"],
            })
            try:
                self.store.insert_with_events("appointments", appointment, [booked])
            except DuplicateKeyError:
                if (first := self._booked_by_this_operation(appointment_id)) is not None:
                    return first  # the same booking ran before, e.g. a retry after a lost answer
                if self.store.db.appointments.count_documents({"slot_keys": {"$in": patient_keys}}, limit=1):
                    raise PatientAlreadyBooked("the patient already has a visit at that time",
                                               start_at=window.start_at.isoformat()) from None
                continue  # this nurse is taken at that time: try the next one
            return AppointmentSchema().dump(appointment)
        raise NoNurseAvailable("no nurse is free at that time", start_at=window.start_at.isoformat())

    @rpc
    def list_appointments(self, patient_id: str | None = None, nurse_id: str | None = None,
                          cursor: str | None = None, limit: int | None = None,
                          patient_ids: list[str] | None = None) -> dict[str, Any]:
        """A page of appointments in visit order, filtered by patient (or any of ``patient_ids``) and nurse."""
        query: dict[str, Any] = {}
        if patient_id is not None:
            query["patient_id"] = str(patient_id)
        elif patient_ids is not None:
            query["patient_id"] = {"$in": [str(one) for one in patient_ids]}
        if nurse_id is not None:
            query["nurse_id"] = str(nurse_id)
        page = fetch_page(self.store.db.appointments, query, "start_at", cursor=cursor,
                          limit=limit, projection={"outbox": 0, "slot_keys": 0})
        return {"items": AppointmentSchema(many=True).dump(page.items), "next_cursor": page.next_cursor}

    def _booked_by_this_operation(self, appointment_id: str) -> dict[str, Any] | None:
        first = self.store.db.appointments.find_one({"_id": appointment_id}, {"outbox": 0})
        return None if first is None else AppointmentSchema().dump(first)

    @rpc
    def get_appointment(self, appointment_id: str) -> dict[str, Any]:
        appointment = self.store.db.appointments.find_one({"_id": str(appointment_id)}, {"outbox": 0})
        if appointment is None:
            raise AppointmentNotFound(f"no appointment {appointment_id}", appointment_id=appointment_id)
        return AppointmentSchema().dump(appointment)
