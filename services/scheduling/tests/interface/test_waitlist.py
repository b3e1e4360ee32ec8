"""The waitlist on the real broker and store: a time given up is offered, as a hold, to the first waiting
patient it fits; when that offer lapses, to the next."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from nameko.testing.services import entrypoint_hook

from services.scheduling.exceptions import OutsideServiceArea
from services.scheduling.tests.interface.support import DENVER, a_bookable_start, book, call
from services.scheduling.tests.interface.test_holds import expire_lapsed_holds


def offer_freed_slots(scheduling) -> None:
    with entrypoint_hook(scheduling, "offer_freed_slots") as sweep:
        sweep()


def wait_for_a_day(scheduling, patient_id: str, days_ahead: int = 3, **extra) -> dict:
    day = str(datetime.now(ZoneInfo(DENVER)).date() + timedelta(days=days_ahead))
    return call(scheduling, "join_waitlist", {"patient_id": patient_id, "visit_type": "iv-mood", "from": day,
                                              "to": day, **extra})


@pytest.mark.parametrize("offer_minutes", [0.0001])
def test_a_freed_time_is_offered_to_the_first_waiting_patient_then_to_the_next(
        scheduling, register, add_nurse, scheduling_events):
    add_nurse("nur_kim", "CO", weekly_hours={day: [{"start": "09:30", "end": "12:30"}]
                                             for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
    booked = book(scheduling, register(), a_bookable_start(time(10, 0)))  # Kim's one visit of the day
    first, second, elsewhere = register(), register(), register()
    wait_for_a_day(scheduling, elsewhere, days_ahead=5)  # waiting for another day: it does not fit
    wait_for_a_day(scheduling, first)
    wait_for_a_day(scheduling, second)

    call(scheduling, "cancel_appointment", booked["id"], {"by": "patient", "reason": "changed plans"})
    offer_freed_slots(scheduling)
    offer_freed_slots(scheduling)  # another process sweeping too: still one offer

    (offered,) = scheduling_events.of_type("waitlist.offered", 1)
    assert offered["payload"]["patient_id"] == first
    hold = call(scheduling, "get_hold", offered["payload"]["hold_id"])
    assert (hold["status"], hold["start_at"]) == ("held", booked["start_at"])

    expire_lapsed_holds(scheduling)   # the first patient let the offer lapse
    offer_freed_slots(scheduling)

    offers = scheduling_events.of_type("waitlist.offered", 2)
    assert [offer["payload"]["patient_id"] for offer in offers] == [first, second]


def test_a_patient_outside_every_service_area_cannot_wait(scheduling, register, add_nurse):
    add_nurse("nur_kim", "CO")
    with pytest.raises(OutsideServiceArea):
        wait_for_a_day(scheduling, register(postal_code="81501"))
