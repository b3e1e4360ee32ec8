"""When a treatment series' next session may be: an induction of six infusions within two weeks, at least a day
apart, then boosters two to six weeks after the last session."""

from datetime import date

import pytest

from services.scheduling.dependencies import load_protocols
from services.scheduling.series import fits_next_session, next_session

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
