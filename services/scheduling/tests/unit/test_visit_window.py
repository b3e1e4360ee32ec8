"""When a home visit may start: on a slot boundary, with enough notice, not too far ahead, and within
visit hours in the patient's own time zone (daylight saving time included).
"""

from datetime import UTC, datetime, timedelta

import pytest

from chassis.config import ConfigurationInvalid, ConfigVersion, VersionedConfig
from services.scheduling.dependencies import load_calendar
from services.scheduling.domain import BookingRefused, CalendarSchema, visit_window

CALENDAR = VersionedConfig.from_document("calendar", {"versions": [{
    "version": "calendar-under-test", "effective_from": "2026-11-01T00:00:00Z",
    "slot_minutes": 15, "travel_buffer_minutes": 30, "minimum_notice_hours": 24, "maximum_days_ahead": 90,
    "earliest_start": "08:00", "latest_start": "16:00",
    "visit_types": {"iv-mood": {"name": "Mood", "duration_minutes": 120},
                    "iv-pain": {"name": "Pain", "duration_minutes": 300},
                    "consult": {"name": "Consultation", "duration_minutes": 30}},
}]}, CalendarSchema()).versions[0]

NEW_YORK = "America/New_York"
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 EST


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def refusal(start_at: datetime, now: datetime = NOW, time_zone: str = NEW_YORK, visit_type: str = "consult"):
    with pytest.raises(BookingRefused) as refused:
        visit_window(CALENDAR, visit_type, start_at, time_zone, now)
    return refused.value.reason


@pytest.mark.parametrize("start_at", [
    utc("2026-11-25T15:00:00+00:00"),
    utc("2026-11-25T15:15:00+00:00"),
    utc("2026-11-25T15:45:00+00:00"),
    utc("2026-11-25T10:30:00-05:00"),  # the same instant given in local time is just as good
])
def test_a_visit_may_start_on_a_slot_boundary(start_at):
    assert visit_window(CALENDAR, "consult", start_at, NEW_YORK, NOW).start_at == start_at


@pytest.mark.parametrize("start_at", [
    utc("2026-11-25T15:05:00+00:00"),
    utc("2026-11-25T15:14:00+00:00"),
    utc("2026-11-25T15:00:30+00:00"),
    utc("2026-11-25T15:00:00.000001+00:00"),
])
def test_a_visit_may_not_start_between_slots(start_at):
    assert refusal(start_at) == "start_not_on_slot"


@pytest.mark.parametrize(("start_at", "reason"), [
    (NOW + timedelta(hours=23, minutes=45), "too_soon"),
    (NOW + timedelta(hours=24), None),                  # exactly the minimum notice is enough
    (NOW + timedelta(days=90), None),                   # exactly the maximum horizon is still bookable
    (NOW + timedelta(days=90, minutes=15), "too_far_ahead"),
])
def test_a_visit_needs_a_day_of_notice_and_lies_at_most_90_days_ahead(start_at, reason):
    if reason is None:
        assert visit_window(CALENDAR, "consult", start_at, NEW_YORK, NOW).start_at == start_at
    else:
        assert refusal(start_at) == reason


@pytest.mark.parametrize(("start_at", "time_zone", "allowed"), [
    ("2026-11-25T08:00:00-05:00", NEW_YORK, True),    # the first start of the day
    ("2026-11-25T07:45:00-05:00", NEW_YORK, False),
    ("2026-11-25T16:00:00-05:00", NEW_YORK, True),    # the last start of the day
    ("2026-11-25T16:15:00-05:00", NEW_YORK, False),
    ("2026-11-25T13:00:00+00:00", "America/Los_Angeles", False),  # 08:00 in New York is 05:00 in LA
    ("2026-11-25T16:00:00+00:00", "America/Los_Angeles", True),   # 08:00 in Los Angeles
    ("2026-11-25T16:00:00+00:00", "America/Phoenix", True),       # 09:00: Arizona keeps standard time
])
def test_a_visit_starts_within_visit_hours_in_the_patients_time_zone(start_at, time_zone, allowed):
    start_at = utc(start_at)
    if allowed:
        assert visit_window(CALENDAR, "consult", start_at, time_zone, NOW).start_at == start_at
    else:
        assert refusal(start_at, time_zone=time_zone) == "outside_visit_hours"


@pytest.mark.parametrize(("start_at", "local", "allowed"), [
    # Autumn: New York falls back from EDT (UTC-4) to EST (UTC-5) at 02:00 on Sunday 2026-11-01.
    ("2026-10-31T12:00:00+00:00", "08:00 EDT", True),
    ("2026-11-01T12:00:00+00:00", "07:00 EST", False),  # the same UTC hour is now before visit hours
    ("2026-11-01T13:00:00+00:00", "08:00 EST", True),
    ("2026-11-01T21:00:00+00:00", "16:00 EST", True),
    ("2026-10-31T21:00:00+00:00", "17:00 EDT", False),
    # Spring: New York springs forward from EST to EDT at 02:00 on Sunday 2027-03-14.
    ("2027-03-13T21:00:00+00:00", "16:00 EST", True),
    ("2027-03-14T21:00:00+00:00", "17:00 EDT", False),  # the same UTC hour is now after visit hours
    ("2027-03-14T20:00:00+00:00", "16:00 EDT", True),
    ("2027-03-14T12:00:00+00:00", "08:00 EDT", True),
    ("2027-03-13T12:00:00+00:00", "07:00 EST", False),
])
def test_visit_hours_follow_the_local_clock_across_a_daylight_saving_change(start_at, local, allowed):
    start_at = utc(start_at)
    now = start_at - timedelta(days=7)
    if allowed:
        window = visit_window(CALENDAR, "consult", start_at, NEW_YORK, now)
        assert f"{window.local_start:%H:%M %Z}" == local
    else:
        assert refusal(start_at, now=now) == "outside_visit_hours"


@pytest.mark.parametrize(("visit_type", "minutes"), [("consult", 30), ("iv-mood", 120), ("iv-pain", 300)])
def test_a_visit_lasts_as_long_as_its_type(visit_type, minutes):
    start_at = utc("2026-11-25T15:00:00+00:00")
    window = visit_window(CALENDAR, visit_type, start_at, NEW_YORK, NOW)
    assert window.end_at - window.start_at == timedelta(minutes=minutes)
    assert window.local_start.isoformat() == "2026-11-25T10:00:00-05:00"


def test_an_unknown_visit_type_is_refused():
    assert refusal(utc("2026-11-25T15:00:00+00:00"), visit_type="iv-party") == "unknown_visit_type"


def test_the_real_calendar_loads_and_is_in_force():
    calendar = load_calendar().effective_at()
    assert isinstance(calendar, ConfigVersion)
    assert {"iv-mood", "iv-pain", "consult"} <= set(calendar["visit_types"])


@pytest.mark.parametrize(("change", "complaint"), [
    ({"visit_types": {"consult": {"name": "Consultation", "duration_minutes": 40}}}, "whole number of slots"),
    ({"travel_buffer_minutes": 20}, "travel buffer is not a whole number of slots"),
    ({"slot_minutes": 7}, "slot_minutes"),
    ({"visit_types": {"IV Mood": {"name": "Mood", "duration_minutes": 120}}}, "visit_types"),
])
def test_a_calendar_whose_visits_do_not_fit_its_slots_stops_the_service(change, complaint):
    version = {"version": "bad", "effective_from": "2026-11-01T00:00:00Z", "slot_minutes": 15,
               "travel_buffer_minutes": 30, "minimum_notice_hours": 24, "maximum_days_ahead": 90,
               "earliest_start": "08:00", "latest_start": "16:00",
               "visit_types": {"consult": {"name": "Consultation", "duration_minutes": 30}}, **change}
    with pytest.raises(ConfigurationInvalid, match=complaint):
        VersionedConfig.from_document("calendar", {"versions": [version]}, CalendarSchema())
