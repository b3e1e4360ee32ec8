"""Which keys of time a visit claims, and where in a nurse's day a visit fits once travel is counted.

A visit claims one key per 5-minute grid cell of its own time, for the nurse and for the patient; a unique
index on those keys makes overlaps impossible. Travel is not a buffer around each visit: the next visit may
start when the previous one has ended plus the travel between those two addresses.
"""

from datetime import UTC, date, datetime, timedelta

import pytest

from services.scheduling.domain import Stop, fits, open_gaps, revision_key, slot_keys, starts_in_gaps, visit_keys
from services.scheduling.roster import shifts_on, travel_time

TRAVEL = {"speed_mph": 30, "road_factor": 1.0, "minimum_minutes": 10}
HOME = (39.7392, -104.9903)          # Denver
NEAR = (39.7392, -104.9503)          # about 2 miles east: the 10-minute minimum
TWELVE_MILES = (39.9131, -104.9903)  # about 12 miles north: 24 minutes at 30 mph, 25 on the grid


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def travel(a, b):
    return travel_time(a, b, TRAVEL)


def test_a_visit_claims_the_nurses_and_the_patients_own_time_on_the_5_minute_grid_and_no_travel():
    keys = visit_keys("nur_kim", "pat_1", at("2026-11-25T15:00:00+00:00"), at("2026-11-25T15:30:00+00:00"))
    assert keys == [f"nur_kim|2026-11-25T15:{m:02d}Z" for m in range(0, 30, 5)] + \
                   [f"pat_1|2026-11-25T15:{m:02d}Z" for m in range(0, 30, 5)]


def test_a_visit_over_midnight_utc_keys_each_cell_by_its_own_date():
    keys = slot_keys("nur_kim", at("2026-11-25T23:30:00+00:00"), at("2026-11-26T01:30:00+00:00"))
    assert (keys[0], keys[-1], len(keys)) == ("nur_kim|2026-11-25T23:30Z", "nur_kim|2026-11-26T01:25Z", 24)


@pytest.mark.parametrize(("first", "second", "overlap"), [
    # starts offered every 15 minutes by one calendar version, every 10 by another: still one grid
    (("15:00", "17:00"), ("16:50", "18:50"), True),
    (("15:00", "17:00"), ("17:00", "19:00"), False),   # back to back: no shared key (travel is checked apart)
    (("15:00", "15:20"), ("15:10", "15:40"), True),
    (("15:00", "15:15"), ("15:15", "15:25"), False),
])
def test_overlapping_visits_share_a_key_whatever_slot_size_offered_their_starts(first, second, overlap):
    def keys(span):
        return set(slot_keys("nur_kim", at(f"2026-11-25T{span[0]}:00+00:00"), at(f"2026-11-25T{span[1]}:00+00:00")))
    assert bool(keys(first) & keys(second)) is overlap


def test_a_patient_claims_the_same_keys_whoever_the_nurse_so_two_nurses_cannot_visit_them_at_once():
    start, end = at("2026-11-25T15:00:00+00:00"), at("2026-11-25T17:00:00+00:00")
    kim, lee = set(visit_keys("nur_kim", "pat_1", start, end)), set(visit_keys("nur_lee", "pat_1", start, end))
    assert kim & lee == set(slot_keys("pat_1", start, end))


def test_revision_keys_name_the_nurse_and_their_working_day_and_sort_in_order():
    assert revision_key("nur_kim", date(2026, 11, 25), 7) == "nur_kim|2026-11-25|r000007"
    assert revision_key("nur_kim", date(2026, 11, 25), 9) < revision_key("nur_kim", date(2026, 11, 25), 10)


@pytest.mark.parametrize(("a", "b", "minutes"), [
    (HOME, HOME, 10),              # the minimum
    (HOME, NEAR, 10),
    (HOME, TWELVE_MILES, 25),      # 12 miles at 30 mph, rounded up to the grid
    (TWELVE_MILES, HOME, 25),      # symmetric
])
def test_travel_time_comes_from_distance_speed_and_minimum_rounded_up_to_the_grid(a, b, minutes):
    assert travel(a, b) == timedelta(minutes=minutes)


SHIFT = [(at("2026-11-25T15:00:00+00:00"), at("2026-11-26T01:00:00+00:00"))]  # 08:00-18:00 in Denver


def stop(start: str, end: str, place=NEAR) -> Stop:
    return Stop(at(f"2026-11-25T{start}:00+00:00"), at(f"2026-11-25T{end}:00+00:00"), place)


@pytest.mark.parametrize(("stops", "place", "start", "fits_then"), [
    ([], NEAR, "15:00", False),                                  # the shift starts at home: 10 minutes to get there
    ([], NEAR, "15:10", True),
    ([], TWELVE_MILES, "15:20", False),
    ([], TWELVE_MILES, "15:25", True),
    ([stop("15:10", "17:10")], NEAR, "17:10", False),            # no time to drive from the previous visit
    ([stop("15:10", "17:10")], NEAR, "17:20", True),             # exactly the 10 minutes between the two addresses
    ([stop("15:10", "17:10")], TWELVE_MILES, "17:30", False),
    ([stop("15:10", "17:10")], TWELVE_MILES, "17:35", True),     # 25 minutes from the previous address
    ([stop("19:00", "21:00")], NEAR, "16:50", True),             # ends 18:50, 10 minutes on to the next visit
    ([stop("19:00", "21:00")], NEAR, "16:55", False),
    ([stop("19:00", "21:00")], NEAR, "18:00", False),            # during the other visit
    ([stop("19:00", "21:00", TWELVE_MILES)], NEAR, "16:35", True),
    ([stop("19:00", "21:00", TWELVE_MILES)], NEAR, "16:40", False),
    ([], NEAR, "23:00", True),                                   # ends 01:00 UTC (18:00 Denver): the shift's end
    ([], NEAR, "23:05", False),
])
def test_a_visit_fits_where_the_travel_between_its_address_and_its_neighbours_fits(stops, place, start, fits_then):
    gaps = open_gaps(SHIFT, stops, HOME, place, timedelta(hours=2), travel)
    assert fits(at(f"2026-11-25T{start}:00+00:00"), gaps) is fits_then


def test_four_two_hour_visits_fit_a_ten_hour_day_when_the_addresses_are_close():
    """With a fixed 30-minute buffer before and after each visit, only three fitted; travel between the
    actual addresses leaves room for a fourth."""
    booked: list[Stop] = []
    while True:
        gaps = open_gaps(SHIFT, booked, HOME, NEAR, timedelta(hours=2), travel)
        if not gaps:
            break
        start = gaps[0][0]
        booked.append(Stop(start, start + timedelta(hours=2), NEAR))
    assert len(booked) == 4
    assert [f"{s.start_at:%H:%M}" for s in booked] == ["15:10", "17:20", "19:30", "21:40"]


def test_a_visit_crossing_midnight_utc_is_checked_against_its_neighbours_like_any_other():
    evening = [(at("2026-11-25T22:00:00+00:00"), at("2026-11-26T04:00:00+00:00"))]  # 15:00-21:00 Denver
    gaps = open_gaps(evening, [Stop(at("2026-11-26T02:00:00+00:00"), at("2026-11-26T03:00:00+00:00"), NEAR)],
                     HOME, NEAR, timedelta(hours=2), travel)
    assert fits(at("2026-11-25T23:50:00+00:00"), gaps)       # 23:50-01:50, 10 minutes to the 02:00 visit
    assert not fits(at("2026-11-26T00:00:00+00:00"), gaps)


NURSE = {"time_zone": "America/New_York",
         "weekly_hours": {"sun": [{"start": "08:00", "end": "16:00"}], "mon": [{"start": "09:00", "end": "12:00"},
                                                                               {"start": "13:00", "end": "17:00"}]},
         "exceptions": [{"date": "2026-11-30", "hours": []}, {"date": "2026-12-05", "hours": [
             {"start": "10:00", "end": "14:00"}]}]}


@pytest.mark.parametrize(("day", "shifts"), [
    (date(2026, 11, 1), [("13:00", "21:00")]),      # fall-back Sunday: 08:00 EST (after the 02:00 change)
    (date(2027, 3, 14), [("12:00", "20:00")]),      # spring-forward Sunday: 08:00 EDT is 12:00 UTC
    (date(2026, 11, 23), [("14:00", "17:00"), ("18:00", "22:00")]),  # a split Monday in EST
    (date(2026, 11, 30), []),                       # a Monday off
    (date(2026, 12, 5), [("15:00", "19:00")]),      # an extra Saturday shift
    (date(2026, 11, 24), []),                       # Tuesdays are not worked
])
def test_working_hours_are_the_nurses_local_hours_with_exceptions_across_daylight_saving(day, shifts):
    expected = []
    for start, end in shifts:
        expected.append((datetime.combine(day, datetime.strptime(start, "%H:%M").time(), tzinfo=UTC),
                         datetime.combine(day, datetime.strptime(end, "%H:%M").time(), tzinfo=UTC)))
    assert shifts_on(NURSE, day) == expected


def test_the_starts_found_by_bisection_are_exactly_those_that_fit():
    gaps = open_gaps(SHIFT, [stop("17:30", "19:30"), stop("21:00", "22:00", TWELVE_MILES)], HOME, NEAR,
                     timedelta(hours=1), travel)
    starts = [SHIFT[0][0] + timedelta(minutes=15 * n) for n in range(40)]
    assert starts_in_gaps(starts, gaps) == {n for n, start in enumerate(starts) if fits(start, gaps)}
    assert starts_in_gaps(starts, gaps)  # some fit, some do not
    assert len(starts_in_gaps(starts, gaps)) < len(starts)
