"""Which slots of a nurse's time a visit takes, and which nurses may take a visit.

A visit owns the keys of every slot its visit and the travel buffers on both sides cover; a unique index
on those keys is what makes a double booking impossible, so two visits of one nurse conflict exactly
when their key lists meet.
"""

from datetime import UTC, datetime, timedelta

import pytest

from chassis.config import ConfigVersion
from services.scheduling.domain import VisitWindow, nurses_for, slot_keys

CALENDAR = ConfigVersion("calendar-under-test", datetime(2026, 11, 1, tzinfo=UTC), {
    "slot_minutes": 15, "travel_buffer_minutes": 30,
})


def window(start: str, minutes: int) -> VisitWindow:
    start_at = datetime.fromisoformat(start)
    return VisitWindow(start_at=start_at, end_at=start_at + timedelta(minutes=minutes), local_start=start_at)


def test_a_visit_takes_its_own_slots_and_half_an_hour_of_travel_on_each_side():
    assert slot_keys(CALENDAR, "nur_kim", window("2026-11-25T15:00:00+00:00", 30)) == [
        "nur_kim|2026-11-25T14:30Z", "nur_kim|2026-11-25T14:45Z",  # travelling there
        "nur_kim|2026-11-25T15:00Z", "nur_kim|2026-11-25T15:15Z",  # the visit
        "nur_kim|2026-11-25T15:30Z", "nur_kim|2026-11-25T15:45Z",  # travelling on
    ]


@pytest.mark.parametrize(("minutes", "keys"), [(30, 6), (120, 12), (300, 24)])
def test_a_longer_visit_takes_more_slots(minutes, keys):
    assert len(slot_keys(CALENDAR, "nur_kim", window("2026-11-25T15:00:00+00:00", minutes))) == keys


def test_a_visit_over_midnight_utc_keys_each_slot_by_its_own_date():
    keys = slot_keys(CALENDAR, "nur_kim", window("2026-11-25T23:30:00+00:00", 30))
    assert keys[0] == "nur_kim|2026-11-25T23:00Z" and keys[-1] == "nur_kim|2026-11-26T00:15Z"


@pytest.mark.parametrize(("second_start", "conflict"), [
    ("2026-11-25T15:00:00+00:00", True),   # the same time
    ("2026-11-25T16:00:00+00:00", True),   # during the first visit
    ("2026-11-25T17:30:00+00:00", True),   # right after it: no time to travel
    ("2026-11-25T17:45:00+00:00", True),
    ("2026-11-25T18:00:00+00:00", False),  # both travel buffers fit in between
    ("2026-11-25T13:00:00+00:00", True),   # ends as the first begins: no time to travel
    ("2026-11-25T12:15:00+00:00", True),   # 45 minutes between them is still not enough
    ("2026-11-25T12:00:00+00:00", False),  # an hour between them is
])
def test_two_visits_of_one_nurse_conflict_when_they_or_their_travel_overlap(second_start, conflict):
    first = set(slot_keys(CALENDAR, "nur_kim", window("2026-11-25T15:00:00+00:00", 120)))
    second = set(slot_keys(CALENDAR, "nur_kim", window(second_start, 120)))
    assert bool(first & second) is conflict


def test_two_nurses_never_share_a_slot():
    same_time = window("2026-11-25T15:00:00+00:00", 120)
    assert not set(slot_keys(CALENDAR, "nur_kim", same_time)) & set(slot_keys(CALENDAR, "nur_lee", same_time))


NURSES = [
    {"_id": "nur_zoe", "name": "Zoe", "licensed_states": ["CO", "NY"]},
    {"_id": "nur_kim", "name": "Kim", "licensed_states": ["CO"], "active": True},
    {"_id": "nur_lee", "name": "Lee", "licensed_states": ["NY"]},
    {"_id": "nur_max", "name": "Max", "licensed_states": ["CO"], "active": False},
]


@pytest.mark.parametrize(("state", "preferred", "chosen"), [
    ("CO", None, ["nur_kim", "nur_zoe"]),     # every active nurse licensed there, in a stable order
    ("NY", None, ["nur_lee", "nur_zoe"]),
    ("TX", None, []),                         # nobody is licensed in Texas
    ("CO", "nur_zoe", ["nur_zoe"]),           # the patient asked for Zoe
    ("NY", "nur_kim", []),                    # Kim may not practise in New York
    ("CO", "nur_max", []),                    # Max no longer takes visits
    ("CO", "nur_nobody", []),
])
def test_only_an_active_nurse_licensed_in_the_patients_state_may_visit(state, preferred, chosen):
    assert [n["_id"] for n in nurses_for(NURSES, state, preferred)] == chosen
