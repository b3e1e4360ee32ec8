"""Availability over RPC on the real broker and store: free start times for a patient across every nurse who
may visit them, with travel between home visits, working hours and existing holds and appointments."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from chassis.errors import InvalidInput
from services.scheduling.exceptions import NurseCannotServePatient, OutsideServiceArea
from services.scheduling.tests.interface.support import DENVER, a_bookable_start, book, call

ZONE = ZoneInfo(DENVER)


def day_ahead(days: int = 3) -> str:
    return str(datetime.now(ZONE).date() + timedelta(days=days))


def availability(scheduling, patient_id: str, first: str, last: str | None = None, visit_type: str = "iv-mood",
                 **extra) -> dict:
    return call(scheduling, "availability", {"patient_id": patient_id, "visit_type": visit_type, "from": first,
                                             "to": last or first, **extra})


def local_starts(answer: dict) -> dict[str, int]:
    return {datetime.fromisoformat(slot["local_start"]).strftime("%H:%M"): slot["nurses_free"]
            for slot in answer["slots"]}


def test_a_day_offers_every_start_that_ends_by_the_latest_end_for_each_free_nurse(scheduling, register, add_nurse):
    add_nurse("nur_kim", "CO")
    add_nurse("nur_zoe", "CO")
    answer = availability(scheduling, register(), day_ahead())

    starts = local_starts(answer)
    assert (min(starts), max(starts)) == ("08:00", "17:00")  # a two-hour visit ends by 19:00
    assert len(starts) == 37 and set(starts.values()) == {2}
    assert answer["time_zone"] == DENVER and answer["calendar_version"]


def test_a_booked_visit_takes_its_time_and_the_travel_on_either_side_from_its_nurse(scheduling, register, add_nurse):
    add_nurse("nur_kim", "CO")
    add_nurse("nur_zoe", "CO")
    book(scheduling, register(), a_bookable_start(time(12, 0)), nurse_id="nur_kim")  # 12:00 to 14:00

    starts = local_starts(availability(scheduling, register(), day_ahead()))

    # Kim can do a visit ending by 11:45 (15 minutes to drive to the next one) or starting from 14:15
    assert (starts["09:45"], starts["10:00"], starts["14:00"], starts["14:15"]) == (2, 1, 1, 2)


def test_the_patient_s_own_visit_removes_the_times_it_overlaps_whoever_the_nurse(scheduling, register, add_nurse):
    add_nurse("nur_kim", "CO")
    add_nurse("nur_zoe", "CO")
    patient = register()
    book(scheduling, patient, a_bookable_start(time(12, 0)))

    starts = local_starts(availability(scheduling, patient, day_ahead()))

    assert "11:00" not in starts and "13:45" not in starts and starts["10:00"] == 1 and starts["14:00"] == 1


def test_a_day_off_an_expired_licence_or_another_nurse_asked_for_narrow_the_offer(scheduling, register, add_nurse):
    day = datetime.now(ZONE).date() + timedelta(days=3)
    add_nurse("nur_kim", "CO", exceptions=[{"date": str(day), "hours": []}])
    add_nurse("nur_old", "CO", expires_on=str(day - timedelta(days=1)))
    add_nurse("nur_zoe", "CO", exceptions=[{"date": str(day), "hours": [{"start": "13:00", "end": "17:00"}]}])
    patient = register()

    starts = local_starts(availability(scheduling, patient, str(day), str(day + timedelta(days=1))))
    one_day = local_starts(availability(scheduling, patient, str(day)))

    assert sorted(one_day) == ["13:15", "13:30", "13:45", "14:00", "14:15", "14:30", "14:45", "15:00"]
    assert len(starts) == 37  # the next day Kim and Zoe work 07:00 to 20:00
    with pytest.raises(NurseCannotServePatient) as refused:
        availability(scheduling, patient, str(day), nurse_id="nur_old")
    assert refused.value.details["reason"] == "licence_expired"


def test_an_address_outside_every_service_area_is_refused_with_the_reason(scheduling, register, add_nurse):
    add_nurse("nur_kim", "CO")  # 50 miles around Denver
    with pytest.raises(OutsideServiceArea) as refused:
        availability(scheduling, register(postal_code="81501"), day_ahead())  # Grand Junction, 240 miles away
    assert refused.value.details == {"state": "CO", "postal_code": "81501"}


@pytest.mark.parametrize(("first", "last", "field"), [
    (day_ahead(3), day_ahead(40), "to"),       # more than the calendar's 31 days
    (day_ahead(3), day_ahead(2), "to"),        # backwards
    ("tomorrow", day_ahead(2), "from"),
])
def test_a_bad_range_is_refused_naming_the_field(scheduling, register, add_nurse, first, last, field):
    add_nurse("nur_kim", "CO")
    with pytest.raises(InvalidInput) as refused:
        availability(scheduling, register(), first, last)
    assert list(refused.value.details["errors"]) == [field]


def test_nothing_is_offered_inside_the_notice_period(scheduling, register, add_nurse):
    add_nurse("nur_kim", "CO")
    today = str(datetime.now(UTC).astimezone(ZONE).date())
    assert availability(scheduling, register(), today)["slots"] == []
