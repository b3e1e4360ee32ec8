"""When a treatment series' next session may be: an induction of six infusions within two weeks, at least a day
apart, then boosters two to six weeks after the last session; a session moved keeps the series within those
rules."""

from datetime import date

import pytest

from services.scheduling.dependencies import load_protocols
from services.scheduling.series import (
    SessionOutsideWindow,
    check_moved_session,
    fits_next_session,
    next_session,
    plan_sessions,
)

INDUCTION = load_protocols().effective_at()["protocols"]["depression-induction"]
TODAY = date(2026, 12, 1)


def days(*numbers: int) -> list[date]:
    return [date(2026, 12, n) for n in numbers]


@pytest.mark.parametrize(("booked", "kind", "number", "earliest", "latest"), [
    ([], "session", 1, date(2026, 12, 2), date(2026, 12, 15)),              # from tomorrow, a fortnight
    (days(3), "session", 2, date(2026, 12, 4), date(2026, 12, 16)),         # a day after, within 14 of the first
    (days(3, 5, 8), "session", 4, date(2026, 12, 9), date(2026, 12, 16)),
    (days(8, 3, 5), "session", 4, date(2026, 12, 9), date(2026, 12, 16)),   # in any order
    (days(3, 5, 7, 9, 11, 13), "booster", 7, date(2026, 12, 27), date(2027, 1, 24)),  # 2 to 6 weeks after
])
def test_the_next_session_of_an_induction(booked, kind, number, earliest, latest):
    upcoming = next_session(INDUCTION, 6, booked, TODAY)
    assert (upcoming.kind, upcoming.number, upcoming.earliest, upcoming.latest) == (kind, number, earliest, latest)


def test_a_plan_with_fewer_sessions_than_the_protocol_offers_boosters_sooner():
    assert next_session(INDUCTION, 2, days(3, 5), TODAY).kind == "booster"


@pytest.mark.parametrize(("day", "fits"), [(date(2026, 12, 3), False), (date(2026, 12, 4), True),
                                           (date(2026, 12, 16), True), (date(2026, 12, 17), False)])
def test_a_session_day_fits_the_window_inclusive(day, fits):
    assert fits_next_session(next_session(INDUCTION, 6, days(3), TODAY), day) is fits


def test_sessions_booked_at_once_follow_the_one_by_one_rules_each_counted_before_the_next():
    planned = plan_sessions(INDUCTION, 6, days(3), days(7, 5, 6), TODAY)  # taken in date order

    assert [(p.number, p.earliest) for p in planned] == [(2, date(2026, 12, 4)), (3, date(2026, 12, 6)),
                                                         (4, date(2026, 12, 7))]


@pytest.mark.parametrize(("booked", "requested", "refused_number", "refused_day"), [
    ([], days(2, 2), 2, date(2026, 12, 2)),          # two sessions on one day: at least a day apart
    ([], days(2, 20), 2, date(2026, 12, 20)),        # the second outside the fortnight of the first
    (days(3), days(1), 2, date(2026, 12, 1)),        # before the session already booked
])
def test_a_session_booked_at_once_outside_its_window_is_named(booked, requested, refused_number, refused_day):
    with pytest.raises(SessionOutsideWindow) as refused:
        plan_sessions(INDUCTION, 6, booked, requested, TODAY)
    assert (refused.value.upcoming.number, refused.value.day) == (refused_number, refused_day)


@pytest.mark.parametrize(("others", "moved_to"), [
    (days(3, 8), date(2026, 12, 6)),       # between two others, a day clear of each
    (days(5, 8), date(2026, 12, 18)),      # the first moved last: still within 14 days of the new first (5th)
    (days(3, 5, 8), date(2026, 12, 2)),    # moved before the others: it becomes the first
])
def test_a_session_moved_within_the_series_rules_is_allowed(others, moved_to):
    check_moved_session(INDUCTION, 6, others, moved_to)


@pytest.mark.parametrize(("others", "moved_to", "refused_number"), [
    (days(3, 8), date(2026, 12, 3), 2),    # the same day as another session
    (days(5, 8), date(2026, 12, 20), 3),   # stretches the series past 14 days from its first
])
def test_a_session_moved_outside_the_series_rules_names_the_session_it_breaks(others, moved_to, refused_number):
    with pytest.raises(SessionOutsideWindow) as refused:
        check_moved_session(INDUCTION, 6, others, moved_to)

    assert refused.value.upcoming.number == refused_number
