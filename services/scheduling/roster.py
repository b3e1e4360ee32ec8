"""The nurse roster's rules as plain functions: where a nurse may practise, whom they serve, when they work,
and how long they take to drive from one address to the next.

Places are ``(latitude, longitude)`` pairs. A patient's address is placed by its ZIP code from the offline
table of the ``zipcodes`` package (no network, no hand-made list). Travel time is estimated from the
great-circle distance, a road factor, a speed and a minimum (``travel_time``); it is the one function to
swap for a routing engine later.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import zipcodes

from services.scheduling.domain import GRID, local_moment

Place = tuple[float, float]
EARTH_RADIUS_MILES = 3958.8
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# The 50 states, DC and the territories with their own board of nursing.
US_STATES = frozenset((
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH "
    "OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR VI GU AS MP").split())


@lru_cache(maxsize=4096)
def locate(postal_code: str) -> Place | None:
    """The coordinates of a US ZIP code (its first five digits), or None if the table does not know it."""
    five = str(postal_code)[:5]
    if len(five) != 5 or not five.isdigit():
        return None
    found = zipcodes.matching(five)
    if not found or not found[0].get("lat"):
        return None
    return float(found[0]["lat"]), float(found[0]["long"])


def distance_miles(a: Place, b: Place) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(math.sqrt(h))


def travel_time(a: Place, b: Place, rules: dict[str, Any]) -> timedelta:
    """The time a nurse needs to drive from ``a`` to ``b``: distance x road factor / speed, at least the
    configured minimum, rounded up to the key grid. Symmetric and obeying the triangle inequality (what lets
    a released visit never break its neighbours' travel)."""
    minutes = distance_miles(a, b) * rules["road_factor"] / rules["speed_mph"] * 60
    minutes = max(minutes, rules["minimum_minutes"])
    grid = GRID.total_seconds() / 60
    return timedelta(minutes=math.ceil(round(minutes, 6) / grid) * grid)


def licensed_on(nurse: dict[str, Any], state: str, day: date) -> bool:
    """Whether the nurse holds an RN licence for ``state`` that has not expired on ``day``."""
    return any(licence["state"] == state and licence["expires_on"] >= day.isoformat() for licence in nurse["licences"])


def serves(nurse: dict[str, Any], postal_code: str, place: Place) -> bool:
    """Whether the patient's address lies in the nurse's service area: a listed ZIP code, or within the
    travel radius of the nurse's home base."""
    area = nurse["service_area"]
    if str(postal_code)[:5] in area.get("postal_codes", ()):
        return True
    radius = area.get("radius_miles")
    return radius is not None and distance_miles(home_of(nurse), place) <= radius


def home_of(nurse: dict[str, Any]) -> Place:
    return nurse["home_base"]["latitude"], nurse["home_base"]["longitude"]


def shifts_on(nurse: dict[str, Any], day: date) -> list[tuple[datetime, datetime]]:
    """The nurse's working hours on a local date as UTC instants: the weekly hours, unless an exception
    (a day off, an extra or changed shift) names that date. Reads the stored roster record (ISO strings)."""
    zone = ZoneInfo(nurse["time_zone"])
    exceptions = {exception["date"]: exception["hours"] for exception in nurse.get("exceptions", ())}
    hours = exceptions.get(day.isoformat(), nurse["weekly_hours"].get(WEEKDAYS[day.weekday()], []))
    return [(local_moment(day, time.fromisoformat(shift["start"]), zone),
             local_moment(day, time.fromisoformat(shift["end"]), zone)) for shift in hours]


def work_day(nurse: dict[str, Any], moment: datetime) -> date:
    """The nurse's local date of a moment: the working day a visit belongs to."""
    return moment.astimezone(ZoneInfo(nurse["time_zone"])).date()


def nurses_for(nurses: list[dict[str, Any]], state: str, postal_code: str, place: Place,
               day: date) -> list[dict[str, Any]]:
    """The nurses who may visit a patient on a local date: active, licensed in the patient's state with a
    licence current that day, and serving the patient's address; in a stable order."""
    return sorted((nurse for nurse in nurses if nurse.get("active", True) and licensed_on(nurse, state, day)
                   and serves(nurse, postal_code, place)), key=lambda nurse: nurse["_id"])


def why_not(nurse: dict[str, Any], state: str, postal_code: str, place: Place, day: date) -> str | None:
    """Why one named nurse may not visit this patient that day (a stable code), or None if they may."""
    if not nurse.get("active", True):
        return "nurse_inactive"
    if not any(licence["state"] == state for licence in nurse["licences"]):
        return "not_licensed_in_state"
    if not licensed_on(nurse, state, day):
        return "licence_expired"
    if not serves(nurse, postal_code, place):
        return "outside_service_area"
    return None
