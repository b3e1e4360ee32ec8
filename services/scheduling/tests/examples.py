"""Roster records for tests (scheduling's own, the gateway's and the end-to-end ones): a nurse who works
every day from 07:00 to 20:00 local time, based at a ZIP code's centre, serving 50 miles around it."""

from __future__ import annotations

from typing import Any

from services.scheduling.roster import WEEKDAYS, locate

EVERY_DAY = {day: [{"start": "07:00", "end": "20:00"}] for day in WEEKDAYS}


def nurse_record(name: str, states: tuple[str, ...] | list[str] = ("CO",), based_at: str = "80202",
                 time_zone: str = "America/Denver", radius_miles: float = 50, expires_on: str = "2030-12-31",
                 **extra: Any) -> dict[str, Any]:
    """The body of ``PUT /v1/nurses/{id}`` (and, with ``id``, of ``add_nurse``)."""
    latitude, longitude = locate(based_at)
    return {"name": name, "time_zone": time_zone,
            "licences": [{"state": state, "number": f"RN-{state}-1001", "expires_on": expires_on} for state in states],
            "home_base": {"latitude": latitude, "longitude": longitude},
            "service_area": {"radius_miles": radius_miles}, "weekly_hours": EVERY_DAY, **extra}
