"""When a home visit may start: on an offered start of the patient's local clock, with enough notice, not too far
ahead, starting no earlier than the first visit hour and ending, recovery included, by the latest end of the
patient's local day (daylight saving time included).
"""

from datetime import UTC, date, datetime, timedelta

import pytest

from chassis.config import ConfigurationInvalid, ConfigVersion, VersionedConfig
from services.scheduling.dependencies import load_calendar
from services.scheduling.domain import BookingRefused, CalendarSchema, offered_starts, visit_window

VERSION = {
    "version": "calendar-under-test", "effective_from": "2026-11-01T00:00:00Z",
    "slot_minutes": 15, "minimum_notice_hours": 24, "maximum_days_ahead": 90,
    "earliest_start": "08:00", "latest_end": "19:00",
    "travel": {"speed_mph": 30, "minimum_minutes": 15},
    "visit_types": {"iv-mood": {"name": "Mood", "duration_minutes": 120},
                    "iv-pain": {"name": "Pain", "duration_minutes": 300},
                    "consult": {"name": "Consultation", "duration_minutes": 30}},
}
CALENDAR = VersionedConfig.from_document("calendar", {"versions": [VERSION]}, CalendarSchema()).versions[0]

NEW_YORK = "America/New_York"
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 EST


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def refusal(start_at: datetime, now: datetime = NOW, time_zone: str = NEW_YORK, visit_type: str = "consult",
            calendar: ConfigVersion = CALENDAR):
    with pytest.raises(BookingRefused) as refused:
        visit_window(calendar, visit_type, start_at, time_zone, now)
    return refused.value.reason


@pytest.mark.parametrize("start_at", [
    utc("2026-11-25T15:00:00+00:00"),
    utc("2026-11-25T15:15:00+00:00"),
    utc("2026-11-25T15:45:00+00:00"),
    utc("2026-11-25T10:30:00-05:00"),  # the same instant given in local time is just as good
])
def test_a_visit_may_start_on_an_offered_start(start_at):
    assert visit_window(CALENDAR, "consult", start_at, NEW_YORK, NOW).start_at == start_at


@pytest.mark.parametrize("start_at", [
    utc("2026-11-25T15:05:00+00:00"),
    utc("2026-11-25T15:14:00+00:00"),
    utc("2026-11-25T15:00:30+00:00"),
    utc("2026-11-25T15:00:00.000001+00:00"),
])
def test_a_visit_may_not_start_between_offered_starts(start_at):
    assert refusal(start_at) == "start_not_on_slot"


def test_offered_starts_follow_the_local_clock_in_a_half_hour_time_zone():
    # Newfoundland is UTC-3:30: 08:00 local is 11:30 UTC, an offered start although not on a UTC quarter hour.
    start = utc("2026-11-25T08:00:00-03:30")
    assert visit_window(CALENDAR, "consult", start, "America/St_Johns", NOW).start_at == start


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


@pytest.mark.parametrize(("start_at", "visit_type", "reason"), [
    ("2026-11-25T08:00:00-05:00", "consult", None),                  # the first start of the day
    ("2026-11-25T07:45:00-05:00", "consult", "outside_visit_hours"),
    ("2026-11-25T18:30:00-05:00", "consult", None),                  # ends at 19:00 exactly
    ("2026-11-25T18:45:00-05:00", "consult", "ends_too_late"),
    ("2026-11-25T17:00:00-05:00", "iv-mood", None),                  # two hours, ends at 19:00
    ("2026-11-25T17:15:00-05:00", "iv-mood", "ends_too_late"),
    ("2026-11-25T14:00:00-05:00", "iv-pain", None),                  # five hours, ends at 19:00
    ("2026-11-25T16:00:00-05:00", "iv-pain", "ends_too_late"),       # would end at 21:00: not late at night
])
def test_the_whole_visit_recovery_included_ends_by_the_latest_end(start_at, visit_type, reason):
    start_at = utc(start_at)
    if reason is None:
        assert visit_window(CALENDAR, visit_type, start_at, NEW_YORK, NOW).start_at == start_at
    else:
        assert refusal(start_at, visit_type=visit_type) == reason


@pytest.mark.parametrize(("start_at", "time_zone", "allowed"), [
    ("2026-11-25T13:00:00+00:00", "America/Los_Angeles", False),  # 08:00 in New York is 05:00 in LA
    ("2026-11-25T16:00:00+00:00", "America/Los_Angeles", True),   # 08:00 in Los Angeles
    ("2026-11-25T16:00:00+00:00", "America/Phoenix", True),       # 09:00: Arizona keeps standard time
    ("2026-11-26T02:30:00+00:00", "America/Los_Angeles", True),   # 18:30 in LA: the next day in UTC
])
def test_visit_hours_are_those_of_the_patients_time_zone(start_at, time_zone, allowed):
    start_at = utc(start_at)
    if allowed:
        window = visit_window(CALENDAR, "consult", start_at, time_zone, NOW)
        assert window.end_at.date() == window.start_at.date() or window.end_at.hour == 3
    else:
        assert refusal(start_at, time_zone=time_zone) == "outside_visit_hours"


@pytest.mark.parametrize(("start_at", "local", "reason"), [
    # Autumn: New York falls back from EDT (UTC-4) to EST (UTC-5) at 02:00 on Sunday 2026-11-01.
    ("2026-10-31T12:00:00+00:00", "08:00 EDT", None),
    ("2026-11-01T12:00:00+00:00", "07:00 EST", "outside_visit_hours"),  # the same UTC hour is now too early
    ("2026-11-01T13:00:00+00:00", "08:00 EST", None),
    ("2026-11-01T23:30:00+00:00", "18:30 EST", None),
    ("2026-10-31T22:30:00+00:00", "18:30 EDT", None),
    ("2026-10-31T23:30:00+00:00", "19:30 EDT", "ends_too_late"),
    # Spring: New York springs forward from EST to EDT at 02:00 on Sunday 2027-03-14.
    ("2027-03-13T23:30:00+00:00", "18:30 EST", None),
    ("2027-03-14T23:30:00+00:00", "19:30 EDT", "ends_too_late"),  # the same UTC hour is now too late
    ("2027-03-14T22:30:00+00:00", "18:30 EDT", None),
    ("2027-03-14T12:00:00+00:00", "08:00 EDT", None),
    ("2027-03-13T12:00:00+00:00", "07:00 EST", "outside_visit_hours"),
])
def test_visit_hours_follow_the_local_clock_across_a_daylight_saving_change(start_at, local, reason):
    start_at = utc(start_at)
    now = start_at - timedelta(days=7)
    if reason is None:
        window = visit_window(CALENDAR, "consult", start_at, NEW_YORK, now)
        assert f"{window.local_start:%H:%M %Z}" == local
    else:
        assert refusal(start_at, now=now) == reason


@pytest.mark.parametrize(("day", "count", "first", "last"), [
    # 08:00 to 18:30 local every 15 minutes: 43 starts, whatever the UTC offset of the day
    (date(2026, 10, 31), 43, "2026-10-31T12:00:00+00:00", "2026-10-31T22:30:00+00:00"),  # EDT
    (date(2026, 11, 1), 43, "2026-11-01T13:00:00+00:00", "2026-11-01T23:30:00+00:00"),   # fall-back day, EST
    (date(2027, 3, 14), 43, "2027-03-14T12:00:00+00:00", "2027-03-14T22:30:00+00:00"),   # spring-forward day
])
def test_offered_starts_of_a_local_day_keep_their_local_times_across_daylight_saving_changes(day, count, first, last):
    a_week_before = datetime.combine(day, datetime.min.time(), tzinfo=UTC) - timedelta(days=7)
    starts = offered_starts(CALENDAR, "consult", day, NEW_YORK, a_week_before)
    assert (len(starts), starts[0], starts[-1]) == (count, utc(first), utc(last))
    for start in starts:  # each is a start visit_window accepts
        visit_window(CALENDAR, "consult", start, NEW_YORK, a_week_before)


def test_no_start_is_offered_inside_the_notice_or_beyond_the_horizon():
    assert offered_starts(CALENDAR, "consult", NOW.date(), NEW_YORK, NOW) == []
    assert offered_starts(CALENDAR, "consult", NOW.date() + timedelta(days=91), NEW_YORK, NOW) == []
    tomorrow = offered_starts(CALENDAR, "consult", NOW.date() + timedelta(days=1), NEW_YORK, NOW)
    assert tomorrow[0] == NOW + timedelta(hours=24)  # 10:00 tomorrow, exactly the notice


def test_an_unknown_visit_type_is_refused():
    assert refusal(utc("2026-11-25T15:00:00+00:00"), visit_type="iv-party") == "unknown_visit_type"


def test_the_real_calendar_loads_and_is_in_force():
    calendar = load_calendar().effective_at()
    assert isinstance(calendar, ConfigVersion)
    assert {"iv-mood", "iv-pain", "consult"} <= set(calendar["visit_types"])


@pytest.mark.parametrize(("change", "complaint"), [
    ({"visit_types": {"consult": {"name": "Consultation", "duration_minutes": 32}}}, "grid cells"),
    ({"slot_minutes": 7}, "slot_minutes"),
    ({"latest_end": "07:00"}, "earliest_start must come before latest_end"),
    ({"travel": {"speed_mph": 0, "minimum_minutes": 15}}, "speed_mph"),
    ({"visit_types": {"IV Mood": {"name": "Mood", "duration_minutes": 120}}}, "visit_types"),
])
def test_a_calendar_that_breaks_the_rules_stops_the_service(change, complaint):
    with pytest.raises(ConfigurationInvalid, match=complaint):
        VersionedConfig.from_document("calendar", {"versions": [{**VERSION, **change}]}, CalendarSchema())
