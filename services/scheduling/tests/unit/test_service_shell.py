"""The scheduling shell in isolation: ``worker_factory`` replaces its neighbours (intake's and billing's RPC
proxies) so each answer they could give is tried; the store stays real (a fresh database), never a mock."""

from datetime import UTC, datetime, timedelta

import pytest
from nameko.testing.services import worker_factory

from chassis.errors import RemoteDomainError
from chassis.store import StoreSession, connect
from services.scheduling.dependencies import create_indexes
from services.scheduling.exceptions import (
    AddressNotLocated,
    OutsideServiceArea,
    PatientNotCleared,
    TimeNotBookable,
    VisitNotPriced,
)
from services.scheduling.service import SchedulingService
from services.scheduling.tests.examples import nurse_record

CLEARED = {"patient_id": "pat_1", "eligible": True, "reasons": [], "rules_version": "r1", "state": "CO",
           "postal_code": "80202", "time_zone": "America/Denver"}
QUOTE = {"quote_id": "quo_1", "currency": "usd", "lines": [], "discount_cents": 0, "total_cents": 60000,
         "deposit_cents": 10000, "balance_cents": 50000, "cancellation_policy": "words", "catalogue_version": "c1"}


@pytest.fixture
def scheduling(mongo_uri, database_prefix):
    client, db = connect({"MONGO_URI": mongo_uri, "DATABASE_PREFIX": database_prefix}, "scheduling")
    create_indexes(db)
    service = worker_factory(SchedulingService, store=StoreSession(db, "scheduling", {"correlation_id": "c-1"}),
                             config={"HOLD_MINUTES": 10})
    service.add_nurse({"id": "nur_kim", **nurse_record("Kim")})
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
    assert refused.value.details["reason"] in ("too_soon", "outside_visit_hours", "ends_too_late")


@pytest.mark.parametrize(("postal_code", "error"), [("99999", AddressNotLocated), ("10001", OutsideServiceArea)])
def test_an_address_no_nurse_serves_is_refused_with_the_reason_not_an_empty_list(scheduling, postal_code, error):
    scheduling.intake.booking_eligibility.return_value = {**CLEARED, "postal_code": postal_code}
    with pytest.raises(error):
        scheduling.availability({"patient_id": "pat_1", "visit_type": "iv-mood",
                                 "from": ten_am_denver_in(3)[:10], "to": ten_am_denver_in(4)[:10]})


def test_a_hold_carries_billings_quote_and_is_asked_for_with_the_holds_id_and_expiry(scheduling):
    scheduling.intake.booking_eligibility.return_value = CLEARED
    scheduling.billing.quote.return_value = QUOTE
    hold = scheduling.place_hold({"patient_id": "pat_1", "visit_type": "iv-mood", "start_at": ten_am_denver_in(5)})
    (request,), _ = scheduling.billing.quote.call_args
    assert request["hold_id"] == hold["id"] and request["expires_at"] == hold["expires_at"]
    assert (hold["status"], hold["quote"], hold["appointment_id"]) == ("held", QUOTE, None)
    stored = scheduling.store.db.appointments.find_one({"hold_id": hold["id"]})
    assert [entry["event"]["payload"]["deposit_cents"] for entry in stored["outbox"]] == [10000]


def test_a_visit_billing_cannot_price_is_not_held_and_nothing_is_claimed(scheduling):
    scheduling.intake.booking_eligibility.return_value = CLEARED
    scheduling.billing.quote.side_effect = RemoteDomainError("NotPriced", 422, "visit_type_not_priced",
                                                             "no price for iv-mood", {})
    with pytest.raises(VisitNotPriced) as refused:
        scheduling.place_hold({"patient_id": "pat_1", "visit_type": "iv-mood", "start_at": ten_am_denver_in(5)})
    assert refused.value.details["billing_code"] == "visit_type_not_priced"
    assert scheduling.store.db.appointments.count_documents({}) == 0
