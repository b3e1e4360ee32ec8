"""The scheduling shell in isolation: ``worker_factory`` replaces its neighbour (intake's RPC proxy) so each
answer intake could give is tried; the store stays real (a fresh database), never a mock."""

from datetime import UTC, datetime, timedelta

import pytest
from nameko.testing.services import worker_factory

from chassis.errors import RemoteDomainError
from chassis.store import StoreSession, connect
from services.scheduling.dependencies import create_indexes
from services.scheduling.exceptions import PatientNotCleared, TimeNotBookable
from services.scheduling.service import SchedulingService

CLEARED = {"patient_id": "pat_1", "eligible": True, "reasons": [], "rules_version": "r1", "state": "CO",
           "time_zone": "America/Denver"}


@pytest.fixture
def scheduling(mongo_uri, database_prefix):
    client, db = connect({"MONGO_URI": mongo_uri, "DATABASE_PREFIX": database_prefix}, "scheduling")
    create_indexes(db)
    db.nurses.insert_one({"_id": "nur_kim", "name": "Kim", "licensed_states": ["CO"], "active": True})
    service = worker_factory(SchedulingService, store=StoreSession(db, "scheduling", {"correlation_id": "c-1"}))
    yield service
    client.close()


def ten_am_denver_in(days: int) -> str:
    day = datetime.now(UTC) + timedelta(days=days)
    return day.replace(hour=17, minute=0, second=0, microsecond=0).isoformat()


def test_a_cleared_patient_is_booked_and_the_booking_event_is_stored_with_it(scheduling):
    scheduling.intake.booking_eligibility.return_value = CLEARED
    appointment = scheduling.book_appointment({"patient_id": "pat_1", "visit_type": "iv-mood",
                                               "start_at": ten_am_denver_in(5)})
    stored = scheduling.store.db.appointments.find_one({"_id": appointment["id"]})
    assert [entry["event"]["type"] for entry in stored["outbox"]] == ["appointment.booked"]
    assert stored["outbox"][0]["event"]["correlation_id"] == "c-1"
    scheduling.intake.booking_eligibility.assert_called_once_with("pat_1", "iv-mood")


def test_intakes_refusal_is_passed_on_with_its_reasons_and_nothing_is_stored(scheduling):
    scheduling.intake.booking_eligibility.return_value = {**CLEARED, "eligible": False,
                                                          "reasons": ["state_not_served"]}
    with pytest.raises(PatientNotCleared) as refused:
        scheduling.book_appointment({"patient_id": "pat_1", "visit_type": "iv-mood", "start_at": ten_am_denver_in(5)})
    assert refused.value.details["reasons"] == ["state_not_served"]
    assert scheduling.store.db.appointments.count_documents({}) == 0


def test_an_unknown_patient_reported_by_intake_is_not_turned_into_another_error(scheduling):
    scheduling.intake.booking_eligibility.side_effect = RemoteDomainError(
        "PatientNotFound", 404, "patient_not_found", "no patient pat_x", {})
    with pytest.raises(RemoteDomainError) as missing:
        scheduling.book_appointment({"patient_id": "pat_x", "visit_type": "iv-mood", "start_at": ten_am_denver_in(5)})
    assert missing.value.code == "patient_not_found"


def test_a_start_outside_the_calendar_is_refused_after_asking_intake_for_the_time_zone(scheduling):
    scheduling.intake.booking_eligibility.return_value = CLEARED
    too_soon = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0).isoformat()
    with pytest.raises(TimeNotBookable) as refused:
        scheduling.book_appointment({"patient_id": "pat_1", "visit_type": "iv-mood", "start_at": too_soon})
    assert refused.value.details["reason"] in ("too_soon", "outside_visit_hours")
