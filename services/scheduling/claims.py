"""Claiming a nurse's and a patient's time in the store: the one place where holds, bookings and re-claims
write slot keys. The rules are in ``domain`` and ``roster``; this module reads a nurse's day, asks them, and
writes under the unique indexes, retrying when another claim on the same nurse-day won the revision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from services.scheduling.domain import Stop, VisitWindow, fits, open_gaps, revision_key, visit_keys
from services.scheduling.exceptions import ClaimContended, NoNurseAvailable, PatientAlreadyBooked
from services.scheduling.roster import Place, home_of, shifts_on, travel_time, work_day

MAX_CLAIM_ATTEMPTS = 8
LIVE = {"slot_keys.0": {"$exists": True}}
STOP_FIELDS = {"start_at": 1, "end_at": 1, "place": 1, "work_day": 1, "revision_keys": 1, "slot_keys": {"$slice": 1}}


@dataclass(frozen=True)
class Claim:
    """What a write is given: the keys to own, the day revision taken, and the nurse's working day."""

    slot_keys: list[str]
    revision_key: str
    work_day: str


Write = Callable[[Claim], None]
"""Stores the claim (an insert or a conditional update); raises DuplicateKeyError when a key is taken."""


def read_nurse_day(db: Database, nurse_id: str, day: date) -> tuple[int, list[dict[str, Any]]]:
    """The latest revision of a nurse's working day and the claims live on it. The revision comes from every
    claim that ever took one on that day (released or moved ones keep their revision keys)."""
    prefix = revision_key(nurse_id, day, 0)[:-6]
    documents = list(db.appointments.find({"revision_keys": {"$gte": prefix, "$lt": prefix + "~"}}, STOP_FIELDS))
    revision = max((int(key[len(prefix):]) for document in documents for key in document["revision_keys"]
                    if key.startswith(prefix)), default=0)
    live = [document for document in documents if document.get("slot_keys") and document["work_day"] == str(day)]
    return revision, live


def as_stop(document: dict[str, Any]) -> Stop:
    return Stop(document["start_at"], document["end_at"], tuple(document["place"]))


def claim_visit(db: Database, nurse: dict[str, Any], patient_id: str, window: VisitWindow, place: Place,
                travel_rules: dict[str, Any], write: Write, moving_id: str | None = None) -> Claim:
    """Claim the nurse's and the patient's time of a visit if it fits the nurse's day with travel; ``write``
    stores it. ``moving_id`` is the claim being moved (a reschedule, a re-claim), left out of the checks.

    Raises ``NoNurseAvailable`` (the nurse does not work then, or is busy, or has no time to travel there),
    ``PatientAlreadyBooked`` (the patient has another visit then), or ``ClaimContended`` after repeated losses.
    """
    day = work_day(nurse, window.start_at)
    duration = window.end_at - window.start_at
    shifts = shifts_on(nurse, day)
    for _ in range(MAX_CLAIM_ATTEMPTS):
        overlapping = {"patient_id": patient_id, **LIVE, "start_at": {"$lt": window.end_at},
                       "end_at": {"$gt": window.start_at}}
        if moving_id is not None:
            overlapping["_id"] = {"$ne": moving_id}
        if db.appointments.count_documents(overlapping, limit=1):
            raise PatientAlreadyBooked("the patient already has a visit or hold at that time")
        revision, live = read_nurse_day(db, nurse["_id"], day)
        stops = [as_stop(document) for document in live if document["_id"] != moving_id]
        gaps = open_gaps(shifts, stops, home_of(nurse), place, duration,
                         lambda a, b: travel_time(a, b, travel_rules))
        if not fits(window.start_at, gaps):
            raise NoNurseAvailable("the nurse is not working then, is busy, or has no time to travel there",
                                   nurse_id=nurse["_id"], start_at=window.start_at.isoformat())
        claim = Claim(visit_keys(nurse["_id"], patient_id, window.start_at, window.end_at),
                      revision_key(nurse["_id"], day, revision + 1), str(day))
        try:
            write(claim)
        except DuplicateKeyError:
            continue  # another claim took this day's revision or these keys first: read again and re-check
        return claim
    raise ClaimContended("other bookings for this nurse kept arriving at the same moment; try again",
                         nurse_id=nurse["_id"], retry_after=1)
