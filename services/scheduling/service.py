"""Scheduling: the nurse roster, availability, holds and appointments. A thin Nameko shell around ``domain``
(slot and travel maths), ``roster`` (licences, service areas, working hours) and ``claims`` (the store's
unique keys)."""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from nameko.dependency_providers import Config
from nameko.timer import timer

import services.scheduling.events  # noqa: F401  (registers the event schemas)
from chassis.clock import utcnow
from chassis.config import ConfigVersion
from chassis.errors import DomainError, InvalidInput, Rejected, RemoteDomainError
from chassis.events import Event
from chassis.ids import derived_id
from chassis.pagination import fetch_page
from chassis.rpc import TimedRpcProxy, rpc
from chassis.service import RpcServiceBase, validated
from chassis.store import Store
from chassis.subscriber import subscribe
from services.scheduling.claims import LIVE, Claim, as_stop, claim_visit
from services.scheduling.dependencies import create_indexes, load_calendar, load_protocols, load_visit_rules
from services.scheduling.domain import (
    BookingRefused,
    VisitWindow,
    offered_starts,
    open_gaps,
    starts_in_gaps,
    visit_window,
)
from services.scheduling.exceptions import (
    AddressNotLocated,
    AppointmentNotChangeable,
    AppointmentNotFound,
    ClaimContended,
    EntryNotFound,
    HoldNotFound,
    IllegalVisitStep,
    InvalidVisitType,
    NoNurseAvailable,
    NotYourVisit,
    NurseCannotServePatient,
    NurseNotFound,
    OutsideServiceArea,
    PatientAlreadyBooked,
    PatientNotCleared,
    SeriesBookingLapsed,
    SeriesNotFound,
    SeriesSessionNotBookable,
    TimeNotBookable,
    VisitNotPriced,
    VisitStepRefused,
)
from services.scheduling.roster import (
    Place,
    home_of,
    licensed_on,
    locate,
    nurses_for,
    shifts_on,
    travel_time,
    why_not,
)
from services.scheduling.schemas import (
    AppointmentSchema,
    AvailabilityRequestSchema,
    BookingRequestSchema,
    CancellationSchema,
    ConsentRevoked,
    DepositPaid,
    HoldRequestSchema,
    HoldSchema,
    HoursSchema,
    LogRangeSchema,
    MedicationEntrySchema,
    NurseSchema,
    PatientCleared,
    RescheduleRequestSchema,
    SeriesBookingRequestSchema,
    VisitStepSchema,
    VitalsSchema,
    WaitlistRequestSchema,
    nurse_view,
)
from services.scheduling.series import (
    NextSession,
    SessionOutsideWindow,
    check_moved_session,
    fits_next_session,
    next_session,
    plan_sessions,
)
from services.scheduling.visits import (
    StepRefused,
    check_medication_entry,
    check_transition,
    evaluate_pre_checks,
    flag_vitals,
    mg_per_kg,
    next_vitals_due,
    reading_timing,
)

log = logging.getLogger(__name__)

CALENDAR = load_calendar()
VISIT_RULES = load_visit_rules()
PROTOCOLS = load_protocols()
HOLD_SWEEP_SECONDS = float(os.environ.get("HOLD_SWEEP_SECONDS", "5"))
#: How long the sessions of a series booked at once stay claimed, unconfirmed, before a sweep settles them.
SERIES_CLAIM_MINUTES = 2
HIDDEN = {"outbox": 0, "slot_keys": 0, "revision_keys": 0, "processed_events": 0}
BOOKED = {"booked_at": {"$exists": True}}


class SchedulingService(RpcServiceBase):
    name = "scheduling"

    store = Store("scheduling", indexes=create_indexes, outbox=("appointments",))
    intake = TimedRpcProxy("intake")
    billing = TimedRpcProxy("billing")
    config = Config()

    # --- the roster ------------------------------------------------------------------------------------

    @rpc
    def add_nurse(self, nurse: dict[str, Any]) -> dict[str, Any]:
        """Add or replace a nurse (by id): licences, home base and service area, working hours."""
        stored = NurseSchema().dump(validated(NurseSchema(), nurse))
        stored["_id"] = stored.pop("id")
        self.store.db.nurses.replace_one({"_id": stored["_id"]}, stored, upsert=True)
        return nurse_view(stored)

    @rpc
    def set_nurse_hours(self, nurse_id: str, hours: dict[str, Any]) -> dict[str, Any]:
        """Replace a nurse's weekly working hours and exceptions (days off, extra shifts)."""
        changed = HoursSchema().dump(validated(HoursSchema(), hours))
        updated = self.store.db.nurses.find_one_and_update({"_id": str(nurse_id)}, {"$set": changed},
                                                           return_document=True)
        if updated is None:
            raise NurseNotFound(f"no nurse {nurse_id}", nurse_id=nurse_id)
        return nurse_view(updated)

    @rpc
    def list_nurses(self, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """A page of nurses in id order."""
        page = fetch_page(self.store.db.nurses, {}, "_id", cursor=cursor, limit=limit)
        return {"items": [nurse_view(nurse) for nurse in page.items], "next_cursor": page.next_cursor}

    @rpc
    def nurse_schedule(self, nurse_id: str, day: str) -> dict[str, Any]:
        """A nurse's working hours and visits (holds included) on one of their local dates."""
        nurse = self._nurse(nurse_id)
        try:
            local_day = date.fromisoformat(str(day))
        except ValueError as exc:
            raise InvalidInput("not a date", errors={"date": ["a date YYYY-MM-DD"]}) from exc
        visits = self.store.db.appointments.find({"nurse_id": nurse["_id"], "work_day": str(local_day), **LIVE},
                                                 HIDDEN).sort("start_at", 1)
        return {"nurse_id": nurse["_id"], "date": str(local_day), "time_zone": nurse["time_zone"],
                "shifts": _json([{"start_at": start, "end_at": end} for start, end in shifts_on(nurse, local_day)]),
                "visits": [{**AppointmentSchema(exclude=("booked_at",)).dump(visit),
                            "status": HoldSchema().dump(visit)["status"]} for visit in visits]}

    # --- availability -------------------------------------------------------------------------------------

    @rpc
    def availability(self, query: dict[str, Any]) -> dict[str, Any]:
        """Free start times for a patient's visit over a range of their local dates, across every nurse who
        may visit them: one query for the nurses, one for their visits in the range, one for the patient's."""
        query = validated(AvailabilityRequestSchema(), query)
        calendar = self._calendar(query["visit_type"])
        days = [query["from_"] + timedelta(days=n) for n in range((query["to"] - query["from_"]).days + 1)]
        if len(days) > calendar["maximum_search_days"]:
            raise InvalidInput("the range is too long",
                               errors={"to": [f"at most {calendar['maximum_search_days']} days after from"]})
        eligibility, place = self._eligible_and_placed(query["patient_id"], query["visit_type"])
        state, postal_code, time_zone = eligibility["state"], eligibility["postal_code"], eligibility["time_zone"]
        now = utcnow()
        starts = [start for day in days for start in offered_starts(calendar, query["visit_type"], day, time_zone, now)]
        nurses = self._nurses_serving(state, postal_code, place, days[0], query.get("nurse_id"))
        duration = timedelta(minutes=calendar["visit_types"][query["visit_type"]]["duration_minutes"])
        free = self._nurses_free(starts, nurses, state, calendar, place, duration) if starts else []
        patient_busy = self._patient_busy(query["patient_id"], starts[0], starts[-1] + duration) if starts else []
        slots = [{"start_at": start, "end_at": start + duration,
                  "local_start": start.astimezone(ZoneInfo(time_zone)).isoformat(), "nurses_free": count}
                 for start, count in zip(starts, free, strict=True)
                 if count and not any(busy_start < start + duration and start < busy_end
                                      for busy_start, busy_end in patient_busy)]
        return {"patient_id": query["patient_id"], "visit_type": query["visit_type"], "time_zone": time_zone,
                "calendar_version": calendar.version, "slots": _json(slots)}

    def _nurses_free(self, starts: list[datetime], nurses: list[dict[str, Any]], state: str, calendar: ConfigVersion,
                     place: Place, duration: timedelta) -> list[int]:
        """How many nurses could take a visit at ``place`` at each of ``starts`` (sorted): one query for the
        nurses' live visits in the range, then each nurse-day's gaps (travel counted) matched to the starts."""
        first_day, last_day = starts[0].date() - timedelta(days=1), starts[-1].date() + timedelta(days=1)
        stops: dict[tuple[str, str], list[Any]] = {}
        for visit in self.store.db.appointments.find(
                {"nurse_id": {"$in": [nurse["_id"] for nurse in nurses]}, **LIVE,
                 "work_day": {"$gte": str(first_day), "$lte": str(last_day)}},
                {"nurse_id": 1, "work_day": 1, "start_at": 1, "end_at": 1, "place": 1}):
            stops.setdefault((visit["nurse_id"], visit["work_day"]), []).append(as_stop(visit))
        counts = [0] * len(starts)
        days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
        for nurse in nurses:
            free: set[int] = set()
            for day in days:
                if licensed_on(nurse, state, day):
                    gaps = open_gaps(shifts_on(nurse, day), stops.get((nurse["_id"], str(day)), []), home_of(nurse),
                                     place, duration, lambda a, b: travel_time(a, b, calendar["travel"]))
                    free |= starts_in_gaps(starts, gaps)
            for index in free:
                counts[index] += 1
        return counts

    def _patient_busy(self, patient_id: str, first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
        return [(visit["start_at"], visit["end_at"]) for visit in self.store.db.appointments.find(
            {"patient_id": patient_id, **LIVE, "start_at": {"$lt": last}, "end_at": {"$gt": first}},
            {"start_at": 1, "end_at": 1})]

    # --- booking and holds ----------------------------------------------------------------------------------

    @rpc
    def book_appointment(self, request: dict[str, Any]) -> dict[str, Any]:
        """Book a home visit without a deposit (staff by phone): the first free nurse who may visit the patient
        then, travel counted, gets it."""
        request = validated(BookingRequestSchema(), request)
        appointment_id = self.store.creation_id("apt")
        existing = self.store.db.appointments.find_one({"_id": appointment_id}, HIDDEN)
        if existing is not None:
            return AppointmentSchema().dump(existing)
        visit = self._visit(request)

        def booking(nurse: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            appointment = {**visit.document(appointment_id, nurse), "status": "booked", "booked_at": utcnow()}
            return appointment, [self._booked_event(appointment)]

        return AppointmentSchema().dump(self._claim_first_free(visit, booking))

    @rpc
    def place_hold(self, request: dict[str, Any]) -> dict[str, Any]:
        """Hold a visit for ``HOLD_MINUTES`` while the patient pays the deposit: the slots are claimed exactly
        as a booking claims them, with billing's quote. A visit billing cannot price is refused before any
        slot is claimed."""
        request = validated(HoldRequestSchema(), request)
        hold_id = self.store.creation_id("hld")
        existing = self.store.db.appointments.find_one({"hold_id": hold_id})
        if existing is not None:
            return HoldSchema().dump(existing)
        return HoldSchema().dump(self._hold(self._visit(request), hold_id, float(self.config.get("HOLD_MINUTES", 10))))

    def _hold(self, visit: _Visit, hold_id: str, minutes: float, waitlist_id: str | None = None) -> dict[str, Any]:
        """Claim a hold for ``minutes`` with billing's quote (``hold.placed``; ``waitlist.offered`` too when it is
        a waiting patient's offer, in the same write)."""
        expires_at = utcnow() + timedelta(minutes=minutes)
        quote = self._quote(hold_id, visit, expires_at)

        def hold(nurse: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            held = {**visit.document(derived_id("apt", hold_id), nurse), "hold_id": hold_id, "status": "held",
                    "expires_at": expires_at, "quote": quote, "held_at": utcnow()}
            events = [self.store.event("hold.placed", {
                "hold_id": hold_id, "patient_id": held["patient_id"], "nurse_id": nurse["_id"],
                "visit_type": held["visit_type"], "start_at": held["start_at"], "end_at": held["end_at"],
                "time_zone": held["time_zone"], "expires_at": expires_at, "quote_id": quote["quote_id"],
                "deposit_cents": quote["deposit_cents"], "currency": quote["currency"]})]
            if waitlist_id is not None:
                held["waitlist_id"] = waitlist_id
                events.append(self.store.event("waitlist.offered", {
                    "waitlist_id": waitlist_id, "patient_id": held["patient_id"], "hold_id": hold_id,
                    "start_at": held["start_at"], "time_zone": held["time_zone"], "expires_at": expires_at}))
            return held, events

        return self._claim_first_free(visit, hold)

    @rpc
    def get_hold(self, hold_id: str) -> dict[str, Any]:
        hold = self.store.db.appointments.find_one({"hold_id": str(hold_id)}, HIDDEN)
        if hold is None:
            raise HoldNotFound(f"no hold {hold_id}", hold_id=hold_id)
        return HoldSchema().dump(hold)

    @subscribe("billing", "deposit.paid", DepositPaid)
    def book_paid_hold(self, event: Event) -> None:
        """The deposit is paid: the hold becomes an appointment in one update. A hold that lapsed meanwhile is
        re-claimed if its time is still free; if not, ``booking.failed`` (billing refunds the deposit). Intake is
        asked again first: a patient who withdrew consent, or whose file went back to a clinician, since the hold
        was placed is not booked (``booking.failed``, refunded), whatever the payment says; nor is a series session
        that a session booked since leaves outside the series' dates."""
        hold_id = event.payload["hold_id"]
        for _ in range(3):
            hold = self.store.db.appointments.find_one({"hold_id": hold_id}, {"outbox": 0})
            if hold is None or hold["patient_id"] != event.payload["patient_id"]:
                raise Rejected(f"deposit.paid for hold {hold_id}, which scheduling never placed for that patient")
            if hold.get("booked_at") or hold["status"] == "failed":
                return  # already settled, by this event or an earlier delivery
            if self._fail_if_not_bookable_now(hold):
                return
            if hold["status"] == "held":
                booked = {**hold, "booked_at": utcnow(), "status": "booked"}
                if self.store.update_once("appointments", {"_id": hold["_id"], "status": "held"},
                                          {"$set": {"status": "booked", "booked_at": booked["booked_at"]}},
                                          event.event_id, [self._booked_event(booked)]):
                    return
                continue  # it lapsed at this very moment: read it again
            self._reclaim_lapsed_hold(hold, event)
            return

    def _fail_if_not_bookable_now(self, hold: dict[str, Any]) -> bool:
        """Whether the hold failed because it may not be booked now: its patient may not book (intake is asked
        again), or, for a series session, a session booked since leaves it outside the series' rules. Its time is
        released and ``booking.failed`` emitted (billing refunds the deposit)."""
        failure = self._not_eligible_now(hold) or self._outside_series_now(hold)
        if failure is None:
            return False
        reason, details = failure
        failed = self.store.event("booking.failed", {"hold_id": hold["hold_id"], "patient_id": hold["patient_id"],
                                                     "reason": reason})
        self.store.update_with_events("appointments", {"_id": hold["_id"], "status": hold["status"]},
                                      {"$set": {"status": "failed", **details, "slot_keys": []}}, [failed])
        return True  # if the hold changed meanwhile, the next delivery of the event sees it settled or re-checks

    def _not_eligible_now(self, hold: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        eligibility = self.intake.booking_eligibility(hold["patient_id"], hold["visit_type"])
        if eligibility["eligible"]:
            return None
        reasons = eligibility.get("reasons") or ["not_eligible"]
        return (f"patient_not_eligible_{reasons[0]}",
                {"failure_reason": "patient_not_eligible", "not_eligible_because": reasons})

    def _outside_series_now(self, hold: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """A series session held, then paid: the sessions booked meanwhile (another hold of the same series paid
        first, say) may have moved the next session's dates past it."""
        series = self.store.db.series.find_one({"_id": hold["series_id"]}) if hold.get("series_id") else None
        if series is None:
            return None
        upcoming = self._upcoming(series, utcnow().date())
        if fits_next_session(upcoming, _local_days([hold])[0]):
            return None
        return "outside_series_window", {"failure_reason": "outside_series_window",
                                         "series_window": {"from": str(upcoming.earliest),
                                                           "to": str(upcoming.latest)}}

    def _reclaim_lapsed_hold(self, hold: dict[str, Any], event: Event) -> None:
        nurse = self._nurse(hold["nurse_id"])
        calendar = CALENDAR.effective_at(hold["held_at"])
        window = VisitWindow(hold["start_at"], hold["end_at"], hold["start_at"])
        booked = {**hold, "booked_at": utcnow(), "status": "booked"}

        def rebook(claim: Claim) -> None:
            result = self.store.update_with_events(
                "appointments", {"_id": hold["_id"], "status": "expired"},
                {"$set": {"status": "booked", "booked_at": booked["booked_at"], "slot_keys": claim.slot_keys,
                          "work_day": claim.work_day}, "$push": {"revision_keys": claim.revision_key}},
                [self._booked_event(booked)])
            if result.matched_count == 0:
                raise RuntimeError(f"hold {hold['hold_id']} changed while it was re-claimed; retrying the event")

        try:
            claim_visit(self.store.db, nurse, hold["patient_id"], window, tuple(hold["place"]),
                        calendar["travel"], rebook, moving_id=hold["_id"])
        except (NoNurseAvailable, PatientAlreadyBooked) as taken:
            failed = self.store.event("booking.failed", {"hold_id": hold["hold_id"], "patient_id": hold["patient_id"],
                                                         "reason": f"hold_lapsed_and_{taken.code}"})
            self.store.update_with_events("appointments", {"_id": hold["_id"], "status": "expired"},
                                          {"$set": {"status": "failed", "failure_reason": taken.code}}, [failed])

    @timer(interval=HOLD_SWEEP_SECONDS)
    def expire_lapsed_holds(self) -> None:
        """Holds past their expiry release their slots (``hold.expired``). Each release is a conditional update,
        so several processes sweeping at once release each hold once."""
        now = utcnow()
        for hold in self.store.db.appointments.find({"status": "held", "expires_at": {"$lte": now}},
                                                    FREED_FIELDS).limit(200):
            self._release_hold(hold, now, {"expires_at": {"$lte": now}})

    def _release_hold(self, hold: dict[str, Any], now: datetime, condition: dict[str, Any] | None = None) -> None:
        """A held hold lapses and gives up its slots (``hold.expired``), once, however many processes try."""
        expired = self.store.event("hold.expired", {"hold_id": hold["hold_id"], "patient_id": hold["patient_id"]})
        self.store.update_with_events("appointments", {"_id": hold["_id"], "status": "held", **(condition or {})},
                                      {"$set": {"status": "expired", "expired_at": now, "slot_keys": [],
                                                "freed_slot": _freed(hold)}}, [expired])

    # --- treatment series -------------------------------------------------------------------------------

    @subscribe("intake", "patient.cleared", PatientCleared)
    def plan_series(self, event: Event) -> None:
        """A clinician cleared the patient with a protocol: the patient gets a series plan (one per clearance,
        its id derived from the review, so a redelivery plans nothing more)."""
        cleared = event.payload
        rules = PROTOCOLS.effective_at()
        code = cleared["protocol_code"] if cleared["protocol_code"] in rules["protocols"] else rules["default_protocol"]
        protocol = rules["protocols"][code]
        self.store.insert_once("series", {
            "_id": derived_id("ser", cleared["patient_id"], cleared["review_id"]), "patient_id": cleared["patient_id"],
            "review_id": cleared["review_id"], "protocol_code": cleared["protocol_code"], "protocol": code,
            "planned_sessions": cleared.get("planned_sessions") or protocol["sessions"],
            "visit_type": protocol["visit_type"], "created_at": utcnow(), "protocols_version": rules.version})

    @rpc
    def patient_series(self, patient_id: str) -> list[dict[str, Any]]:
        """A patient's series: the protocol, the sessions booked so far and when the next one (or a booster) may
        be, for the website to ask availability for exactly those dates."""
        today = datetime.now(UTC).date()
        return [self._series_view(series, today)
                for series in self.store.db.series.find({"patient_id": str(patient_id)}).sort("created_at", 1)]

    def _sessions(self, series: dict[str, Any]) -> list[dict[str, Any]]:
        """The series' sessions so far (booked, under way or given), in date order."""
        return list(self.store.db.appointments.find(
            {"series_id": series["_id"], **BOOKED, "status": {"$in": list(SESSION_STATUSES)}},
            {"start_at": 1, "status": 1, "time_zone": 1}).sort("start_at", 1))

    def _upcoming(self, series: dict[str, Any], today: date,
                  sessions: list[dict[str, Any]] | None = None) -> NextSession:
        """When the series' next session (or booster) may be, after its sessions so far."""
        sessions = self._sessions(series) if sessions is None else sessions
        return next_session(_protocol_of(series), series["planned_sessions"], _local_days(sessions), today)

    def _series_view(self, series: dict[str, Any], today: date) -> dict[str, Any]:
        sessions = self._sessions(series)
        upcoming = self._upcoming(series, today, sessions)
        return _json({"id": series["_id"], "patient_id": series["patient_id"], "protocol": series["protocol"],
                      "protocol_code": series["protocol_code"], "visit_type": series["visit_type"],
                      "planned_sessions": series["planned_sessions"], "protocols_version": series["protocols_version"],
                      "sessions": [{"appointment_id": s["_id"], "start_at": s["start_at"], "status": s["status"]}
                                   for s in sessions],
                      "next": {"kind": upcoming.kind, "number": upcoming.number, "from": str(upcoming.earliest),
                               "to": str(upcoming.latest)}})

    def _check_series(self, request: dict[str, Any], window: VisitWindow) -> None:
        """A session booked in a series: the patient's own series, its visit type, inside the next session's
        dates."""
        series = self.store.db.series.find_one({"_id": str(request["series_id"]), "patient_id": request["patient_id"]})
        if series is None:
            raise SeriesNotFound(f"no series {request['series_id']} for this patient", series_id=request["series_id"])
        view = self._series_view(series, utcnow().date())
        if request["visit_type"] != series["visit_type"]:
            raise TimeNotBookable(f"this series is of {series['visit_type']} visits",
                                  reason="not_the_series_visit_type")
        if not view["next"]["from"] <= str(window.local_start.date()) <= view["next"]["to"]:
            raise TimeNotBookable(f"the next session is due between {view['next']['from']} and {view['next']['to']}",
                                  reason="outside_series_window", **view["next"])

    def _check_moved_session(self, appointment: dict[str, Any], new_day: date) -> None:
        """A series session moved keeps the series within its rules (``series.check_moved_session``)."""
        series = self.store.db.series.find_one({"_id": appointment["series_id"]})
        if series is None:
            return
        others = [session for session in self._sessions(series) if session["_id"] != appointment["_id"]]
        try:
            check_moved_session(_protocol_of(series), series["planned_sessions"], _local_days(others), new_day)
        except SessionOutsideWindow as outside:
            raise _not_in_series_window(outside) from outside

    @rpc
    def book_series_sessions(self, patient_id: str, series_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Book several sessions of a series at once, all or nothing. Each session must fit the series' rules as
        if the earlier ones were booked one by one. The store claims one appointment at a time (no transaction
        spans several), so the sessions are claimed one by one, unconfirmed; if one cannot be claimed, those
        claimed already are released and the answer names it. Once all are claimed the booking is recorded as
        decided (one write), then each claim becomes a booked appointment with its ``appointment.booked``.
        A booking left unfinished (a crash) is settled by ``settle_series_bookings``: rolled forward if it was
        decided, released if not. The ids derive from the operation key, so a retry answers the first result."""
        request = validated(SeriesBookingRequestSchema(), request)
        booking_id = self.store.creation_id("sbk")
        booking = self.store.db.series_bookings.find_one({"_id": booking_id})
        if booking is not None and booking["status"] != "claiming":
            return self._series_booking_result(booking)
        series = self.store.db.series.find_one({"_id": str(series_id), "patient_id": str(patient_id)})
        if series is None:
            raise SeriesNotFound(f"no series {series_id} for this patient", series_id=series_id)
        visits = self._series_visits(series, request)
        now = utcnow()
        ids = [self.store.creation_id("apt", "session", visit.window.start_at.isoformat()) for _, visit in visits]
        self.store.insert_once("series_bookings", {
            "_id": booking_id, "patient_id": series["patient_id"], "series_id": series["_id"], "status": "claiming",
            "appointment_ids": ids, "sessions": [number for number, _ in visits], "created_at": now,
            "expires_at": now + timedelta(minutes=SERIES_CLAIM_MINUTES)})
        for (number, visit), appointment_id in zip(visits, ids, strict=True):
            if self.store.db.appointments.count_documents({"_id": appointment_id}, limit=1):
                continue  # claimed by an earlier execution of this same operation
            try:
                self._claim_first_free(visit, lambda nurse, visit=visit, appointment_id=appointment_id: (
                    {**visit.document(appointment_id, nurse), "status": "claiming", "series_booking_id": booking_id,
                     "expires_at": now + timedelta(minutes=SERIES_CLAIM_MINUTES)}, []))
            except (NoNurseAvailable, PatientAlreadyBooked, ClaimContended) as taken:
                if self.store.db.appointments.count_documents({"_id": appointment_id}, limit=1):
                    continue  # the same operation, executed twice at once, claimed it first
                self.store.db.series_bookings.update_one({"_id": booking_id, "status": "claiming"}, {"$set": {
                    "status": "failed", "failed_session": {"session": number, "start_at": visit.window.start_at,
                                                           "reason": taken.code}}})
                return self._series_booking_result(self._settle_series_booking(booking_id))
        self.store.db.series_bookings.update_one({"_id": booking_id, "status": "claiming"},
                                                 {"$set": {"status": "booked", "booked_at": utcnow()}})
        return self._series_booking_result(self._settle_series_booking(booking_id))

    def _series_visits(self, series: dict[str, Any], request: dict[str, Any]) -> list[tuple[int, _Visit]]:
        """Each requested session, checked against the calendar and the series' rules (numbered in the
        series), in date order; nothing is claimed yet."""
        base = {"patient_id": series["patient_id"], "visit_type": series["visit_type"], "series_id": series["_id"],
                **({"nurse_id": request["nurse_id"]} if request.get("nurse_id") else {})}
        calendar = self._calendar(series["visit_type"])
        eligibility, place = self._eligible_and_placed(series["patient_id"], series["visit_type"])
        visits = sorted((self._visit_for({**base, "start_at": start_at}, calendar, eligibility, place,
                                         series_checked=True) for start_at in request["start_ats"]),
                        key=lambda visit: visit.window.start_at)
        try:
            planned = plan_sessions(_protocol_of(series), series["planned_sessions"],
                                    _local_days(self._sessions(series)),
                                    [visit.window.local_start.date() for visit in visits], utcnow().date())
        except SessionOutsideWindow as outside:
            raise _not_in_series_window(outside) from outside
        return [(upcoming.number, visit) for upcoming, visit in zip(planned, visits, strict=True)]

    def _settle_series_booking(self, booking_id: str) -> dict[str, Any]:
        """Finish a booking of several sessions by its recorded decision: booked, each unconfirmed claim becomes
        a booked appointment (with its event, in the same write); failed or lapsed, each is released."""
        now = utcnow()
        self.store.db.series_bookings.update_one({"_id": booking_id, "status": "claiming", "expires_at": {"$lte": now}},
                                                 {"$set": {"status": "failed", "failed_session": None}})
        booking = self.store.db.series_bookings.find_one({"_id": booking_id})
        for claim in self.store.db.appointments.find({"series_booking_id": booking_id, "status": "claiming"},
                                                     HIDDEN):
            if booking["status"] == "booked":
                booked = {**claim, "status": "booked", "booked_at": booking["booked_at"]}
                self.store.update_with_events("appointments", {"_id": claim["_id"], "status": "claiming"},
                                              {"$set": {"status": "booked", "booked_at": booking["booked_at"]},
                                               "$unset": {"expires_at": ""}}, [self._booked_event(booked)])
            elif booking["status"] == "failed":
                self.store.db.appointments.update_one({"_id": claim["_id"], "status": "claiming"}, {
                    "$set": {"status": "released", "slot_keys": [], "released_at": now}})
        return booking

    def _series_booking_result(self, booking: dict[str, Any]) -> dict[str, Any]:
        """The booked sessions; a failed booking answers its failure again (a retry gets the first answer)."""
        if booking["status"] == "failed":
            failed = booking.get("failed_session")
            if failed is None:
                raise SeriesBookingLapsed("this booking was left unfinished and released; book again",
                                          series_id=booking["series_id"])
            raise SeriesSessionNotBookable(
                f"session {failed['session']} could not be booked ({failed['reason']}): no session was booked",
                series_id=booking["series_id"], **_json(failed))
        appointments = self.store.db.appointments.find({"_id": {"$in": booking["appointment_ids"]}},
                                                       HIDDEN).sort("start_at", 1)
        return {"id": booking["_id"], "patient_id": booking["patient_id"], "series_id": booking["series_id"],
                "status": booking["status"], "appointments": AppointmentSchema(many=True).dump(appointments)}

    @timer(interval=HOLD_SWEEP_SECONDS)
    def settle_series_bookings(self) -> None:
        """Bookings of several sessions left unfinished past their claims' expiry (the worker died): rolled
        forward if decided, else released. Every change is conditional, so concurrent sweeps agree."""
        for booking_id in self.store.db.appointments.distinct(
                "series_booking_id", {"status": "claiming", "expires_at": {"$lte": utcnow()}}):
            self._settle_series_booking(booking_id)

    # --- the waitlist ---------------------------------------------------------------------------------------

    @rpc
    def join_waitlist(self, request: dict[str, Any]) -> dict[str, Any]:
        """A patient waits for an earlier visit between two of their local dates (with one nurse, if named).
        When a time is freed it is offered, as a hold, to the first waiting patient it fits."""
        request = validated(WaitlistRequestSchema(), request)
        calendar = self._calendar(request["visit_type"])
        if (request["to"] - request["from_"]).days >= calendar["maximum_days_ahead"]:
            raise InvalidInput("the range is too long", errors={"to": ["beyond the booking horizon"]})
        eligibility, place = self._eligible_and_placed(request["patient_id"], request["visit_type"])
        self._nurses_serving(eligibility["state"], eligibility["postal_code"], place, request["from_"],
                             request.get("nurse_id"))
        entry_id = self.store.creation_id("wtl")
        entry = {"_id": entry_id, "patient_id": request["patient_id"], "visit_type": request["visit_type"],
                 "from": str(request["from_"]), "to": str(request["to"]), "nurse_id": request.get("nurse_id"),
                 "time_zone": eligibility["time_zone"], "status": "waiting", "created_at": utcnow(), "offers": []}
        if not self.store.insert_once("waitlist", entry):
            entry = self.store.db.waitlist.find_one({"_id": entry_id})
        return _waitlist_view(entry)

    @timer(interval=HOLD_SWEEP_SECONDS)
    def offer_freed_slots(self) -> None:
        """Each time given up (cancelled, moved, lapsed) goes, as a hold for ``WAITLIST_OFFER_MINUTES``, to the
        first waiting patient whom it fits; the offer's hold id derives from the entry and the time, so
        several processes offering the same time make one hold."""
        for freed in self.store.db.appointments.find({"freed_slot.nurse_id": {"$exists": True}},
                                                     {"freed_slot": 1}).limit(20):
            self._offer(freed["freed_slot"])
            self.store.db.appointments.update_one({"_id": freed["_id"], "freed_slot": freed["freed_slot"]},
                                                  {"$unset": {"freed_slot": ""}})

    def _offer(self, freed: dict[str, Any]) -> None:
        slot = f"{freed['nurse_id']}|{freed['start_at'].isoformat()}"
        minutes = float(self.config.get("WAITLIST_OFFER_MINUTES", 30))
        for entry in self.store.db.waitlist.find({"status": {"$in": ["waiting", "offered"]},
                                                  "offers.slot": {"$ne": slot}}).sort("created_at", 1).limit(50):
            local_day = str(freed["start_at"].astimezone(ZoneInfo(entry["time_zone"])).date())
            if not entry["from"] <= local_day <= entry["to"] or entry.get("nurse_id") not in (None, freed["nurse_id"]):
                continue
            if entry["status"] == "offered" and self._offer_pending(entry):
                continue  # one offer at a time per waiting patient
            hold_id = derived_id("hld", entry["_id"], slot)
            try:
                visit = self._visit({"patient_id": entry["patient_id"], "visit_type": entry["visit_type"],
                                     "start_at": freed["start_at"], "nurse_id": freed["nurse_id"]})
                if self.store.db.appointments.count_documents({"hold_id": hold_id}, limit=1) == 0:
                    self._hold(visit, hold_id, minutes, waitlist_id=entry["_id"])
            except DomainError as unsuitable:  # not eligible any more, does not fit, taken meanwhile
                log.info("waitlist %s not offered %s: %s", entry["_id"], slot, unsuitable)
                continue
            self.store.db.waitlist.update_one({"_id": entry["_id"], "offers.slot": {"$ne": slot}}, {
                "$set": {"status": "offered"}, "$push": {"offers": {"slot": slot, "hold_id": hold_id,
                                                                    "offered_at": utcnow()}}})
            return

    def _offer_pending(self, entry: dict[str, Any]) -> bool:
        last = entry["offers"][-1]["hold_id"] if entry["offers"] else None
        return last is not None and self.store.db.appointments.count_documents(
            {"hold_id": last, "status": {"$in": ["held", "booked"]}}, limit=1) > 0

    # --- appointments ------------------------------------------------------------------------------------

    @rpc
    def list_appointments(self, patient_id: str | None = None, nurse_id: str | None = None,
                          cursor: str | None = None, limit: int | None = None,
                          patient_ids: list[str] | None = None) -> dict[str, Any]:
        """A page of appointments (not holds) in visit order, filtered by patient (or any of ``patient_ids``)
        and nurse."""
        query: dict[str, Any] = dict(BOOKED)
        if patient_id is not None:
            query["patient_id"] = str(patient_id)
        elif patient_ids is not None:
            query["patient_id"] = {"$in": [str(one) for one in patient_ids]}
        if nurse_id is not None:
            query["nurse_id"] = str(nurse_id)
        page = fetch_page(self.store.db.appointments, query, "start_at", cursor=cursor, limit=limit,
                          projection=HIDDEN)
        return {"items": AppointmentSchema(many=True).dump(page.items), "next_cursor": page.next_cursor}

    @rpc
    def get_appointment(self, appointment_id: str) -> dict[str, Any]:
        return AppointmentSchema().dump(self._appointment(appointment_id))

    # --- changes before the visit ------------------------------------------------------------------------

    @rpc
    def reschedule_appointment(self, appointment_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Move a booked visit to another time (and nurse): the new time is claimed and the old one given up in
        the same single write, so the patient is never left without a slot; the same nurse is tried first."""
        request = validated(RescheduleRequestSchema(), request)
        appointment = self._changeable(appointment_id)
        visit = self._visit({**request, "patient_id": appointment["patient_id"],
                             "visit_type": appointment["visit_type"]}, prefer=appointment["nurse_id"])
        if appointment.get("series_id"):
            self._check_moved_session(appointment, visit.window.local_start.date())

        def moved(nurse: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            document = {**visit.document(appointment["_id"], nurse), "previous_start_at": appointment["start_at"],
                        "rescheduled_at": utcnow(), "freed_slot": _freed(appointment)}
            document.pop("operation_key")
            rescheduled = self.store.event("appointment.rescheduled", {
                **{key: document[key] for key in ("patient_id", "nurse_id", "visit_type", "start_at", "end_at",
                                                  "time_zone")},
                "appointment_id": appointment["_id"], "previous_start_at": appointment["start_at"]})
            return document, [rescheduled]

        return AppointmentSchema().dump(self._claim_first_free(visit, moved, moving=appointment))

    @rpc
    def cancel_appointment(self, appointment_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Cancel a booked visit, by the patient or the clinic, releasing its time; the event carries the notice
        given (billing applies its fee policy). Cancelling twice answers the first cancellation."""
        request = validated(CancellationSchema(), request)
        appointment = self._appointment(appointment_id)
        if appointment["status"] == "cancelled":
            return AppointmentSchema().dump(appointment)
        appointment = self._changeable(appointment_id)
        self._cancel(appointment, request["by"], request["reason"])
        return AppointmentSchema().dump(self._appointment(appointment_id))

    @subscribe("intake", "consent.revoked", ConsentRevoked)
    def cancel_after_consent_revoked(self, event: Event) -> None:
        """Consent revoked: the patient's future infusions are cancelled by the clinic (no fee) and their holds
        released. Each change records the event, so a redelivery changes nothing."""
        patient_id, now = event.payload["patient_id"], utcnow()
        calendar = CALENDAR.effective_at()
        infusions = [code for code, visit_type in calendar["visit_types"].items() if visit_type["infusion"]]
        for appointment in self.store.db.appointments.find({"patient_id": patient_id, "status": "booked", **BOOKED,
                                                            "visit_type": {"$in": infusions},
                                                            "start_at": {"$gt": now}}, HIDDEN):
            self._cancel(appointment, "clinic", "consent_revoked", event_id=event.event_id)
        for hold in self.store.db.appointments.find({"patient_id": patient_id, "status": "held"}, FREED_FIELDS):
            self._release_hold(hold, now)

    def _cancel(self, appointment: dict[str, Any], by: str, reason: str, event_id: str | None = None) -> None:
        now = utcnow()
        notice_hours = round((appointment["start_at"] - now).total_seconds() / 3600, 2)
        cancelled = self.store.event("appointment.cancelled", {
            "appointment_id": appointment["_id"], "patient_id": appointment["patient_id"],
            "visit_type": appointment["visit_type"], "start_at": appointment["start_at"],
            "time_zone": appointment["time_zone"], "by": by, "notice_hours": notice_hours, "reason": reason})
        change = {"$set": {"status": "cancelled", "slot_keys": [], "cancelled_at": now, "cancelled_by": by,
                           "cancellation_reason": reason, "notice_hours": notice_hours,
                           "freed_slot": _freed(appointment)}}
        query = {"_id": appointment["_id"], "status": "booked"}
        if event_id is not None:
            self.store.update_once("appointments", query, change, event_id, [cancelled])
        elif self.store.update_with_events("appointments", query, change, [cancelled]).matched_count == 0:
            raise AppointmentNotChangeable("the appointment changed meanwhile", appointment_id=appointment["_id"])

    def _appointment(self, appointment_id: str) -> dict[str, Any]:
        appointment = self.store.db.appointments.find_one({"_id": str(appointment_id), **BOOKED}, HIDDEN)
        if appointment is None:
            raise AppointmentNotFound(f"no appointment {appointment_id}", appointment_id=appointment_id)
        return appointment

    def _changeable(self, appointment_id: str) -> dict[str, Any]:
        """A booked appointment whose visit has not begun: the only kind that may be moved or cancelled."""
        appointment = self._appointment(appointment_id)
        if appointment["status"] != "booked" or appointment["start_at"] <= utcnow():
            raise AppointmentNotChangeable(f"the appointment is {appointment['status']} and may no longer change",
                                           appointment_id=appointment["_id"], status=appointment["status"])
        return appointment

    # --- the visit ------------------------------------------------------------------------------------------

    @rpc
    def record_visit_step(self, appointment_id: str, step: dict[str, Any], actor: dict[str, str]) -> dict[str, Any]:
        """The assigned nurse (or an admin) records the next step of the visit; each step is one conditional
        write with its ``visit.*`` event, so a step is never recorded twice and illegal orders are 409s."""
        step = validated(VisitStepSchema(), step)
        appointment = self._visit_of(appointment_id, actor)
        rules = VISIT_RULES.effective_at()
        state = (appointment.get("visit") or {}).get("state")
        if appointment["status"] not in VISIT_UNDER_WAY:
            raise IllegalVisitStep(f"the appointment is {appointment['status']}", appointment_id=appointment["_id"])
        try:
            check_transition(state, step["step"])
            change, events = self._visit_change(appointment, step, rules, actor)
        except StepRefused as refused:
            error = IllegalVisitStep if refused.reason == "illegal_transition" else VisitStepRefused
            raise error(str(refused), reason=refused.reason, state=state) from refused
        result = self.store.update_with_events(
            "appointments", {"_id": appointment["_id"], "visit.state": state,
                             "status": {"$in": list(VISIT_UNDER_WAY)}}, change, events)
        if result.matched_count == 0:
            raise IllegalVisitStep("another step of this visit was recorded meanwhile; read it again",
                                   reason="visit_changed", state=state)
        return self._visit_view(self._appointment(appointment_id))

    def _visit_change(self, appointment: dict[str, Any], step: dict[str, Any], rules: ConfigVersion,
                      actor: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The update and events of one step (``StepRefused`` when a rule forbids it)."""
        name, now = step["step"], utcnow()
        ids = {"appointment_id": appointment["_id"], "patient_id": appointment["patient_id"]}
        record = {**_json({key: value for key, value in step.items() if key != "pre_checks"}),
                  "at": now, "by": actor["id"], "rules_version": rules.version}
        new_state, fields_set, events = name, {}, []
        if name == "en_route":
            events.append(self.store.event("visit.en_route", {
                **ids, "nurse_id": appointment["nurse_id"], "time_zone": appointment["time_zone"],
                "arrival_from": step["arrival_from"], "arrival_to": step["arrival_to"]}))
        elif name in ("arrived", "started"):
            if name == "arrived":  # the nurse's note of how late the patient was (0: on time)
                fields_set["visit.patient_late_minutes"] = step.get("patient_late_minutes", 0)
            events.append(self.store.event(f"visit.{name}", ids))
        elif name == "pre_checks":
            outcome = evaluate_pre_checks(step["pre_checks"], appointment["visit_type"], rules)
            record.update(pre_checks=_json(step["pre_checks"]), passed=outcome.passed, failed=outcome.failed)
            fields_set["visit.weight_kg"] = step["pre_checks"]["weight_kg"]
            if outcome.passed:
                events.append(self.store.event("visit.pre_checked", ids))
            else:
                new_state = "aborted"
                fields_set.update({"visit.abort_reason": outcome.reason, "visit.chargeable": outcome.chargeable})
                events.append(self.store.event("visit.aborted", {
                    **ids, "visit_type": appointment["visit_type"], "reason": outcome.reason,
                    "chargeable": outcome.chargeable}))
        elif name == "aborted":
            if step["reason"] not in rules["abort_reasons"]:
                raise StepRefused("unknown_abort_reason",
                                  f"the reason must be one of {', '.join(sorted(rules['abort_reasons']))}")
            chargeable = rules["abort_reasons"][step["reason"]]["chargeable"]
            fields_set.update({"visit.abort_reason": step["reason"], "visit.chargeable": chargeable})
            events.append(self.store.event("visit.aborted", {**ids, "visit_type": appointment["visit_type"],
                                                             "reason": step["reason"], "chargeable": chargeable}))
        elif name == "completed":
            fields_set["visit.infusion_minutes"] = step["infusion_minutes"]
            events.append(self.store.event("visit.completed", {**ids, "visit_type": appointment["visit_type"],
                                                               "infusion_minutes": step["infusion_minutes"],
                                                               "completed_at": now}))
        elif name == "discharged":
            if not (step["escort_present"] and step["post_care_instructions_given"]):
                raise StepRefused("discharge_needs_escort_and_instructions",
                                  "discharge only to a responsible adult, with post-care instructions given")
            events.append(self.store.event("visit.discharged", {**ids, "visit_type": appointment["visit_type"],
                                                                "time_zone": appointment["time_zone"],
                                                                "discharged_at": now}))
        elif name == "no_show":
            events.append(self.store.event("appointment.no_show", {
                **ids, "visit_type": appointment["visit_type"], "start_at": appointment["start_at"]}))
        status = VISIT_STATUS.get(new_state, "in_progress")
        change = {"$set": {"visit.state": new_state, "status": status, **fields_set},
                  "$push": {"visit.steps": record}}
        return change, events

    @rpc
    def record_vitals(self, appointment_id: str, reading: dict[str, Any], actor: dict[str, str]) -> dict[str, Any]:
        """A set of vitals during the visit (from the pre-checks until discharge): out of the clinic's limits
        it is stored flagged; outside any physiological range it is refused. Vitals never leave in an event."""
        reading = validated(VitalsSchema(), reading)
        appointment = self._visit_of(appointment_id, actor)
        rules = VISIT_RULES.effective_at()
        try:
            flags = flag_vitals(reading, rules)
        except StepRefused as refused:
            raise VisitStepRefused(str(refused), reason=refused.reason) from refused
        visit = appointment.get("visit") or {}
        taken_at = reading.get("taken_at") or utcnow()
        timing = reading_timing(visit.get("state"), _started_at(visit), _taken(visit), taken_at,
                                rules["vitals_every_minutes"])
        entry = {**reading, "taken_at": taken_at, "recorded_by": actor["id"], "flags": flags,
                 "late_reading": timing.late, "overdue_by_minutes": timing.overdue_by_minutes,
                 "rules_version": rules.version}
        result = self.store.db.appointments.update_one(
            {"_id": appointment["_id"], "visit.state": {"$in": list(MONITORED)}}, {"$push": {"visit.vitals": entry}})
        if result.matched_count == 0:
            raise IllegalVisitStep("vitals are recorded from the pre-checks until discharge",
                                   reason="not_monitoring", state=(appointment.get("visit") or {}).get("state"))
        return _json(entry)

    @rpc
    def record_medication(self, appointment_id: str, entry: dict[str, Any], actor: dict[str, str]) -> dict[str, Any]:
        """One entry of the controlled-substance record (append-only: a mistake is corrected by a new entry that
        names it): drawn, given (with mg/kg of the weight taken at the pre-checks) or wasted with a witness. After
        an abort or a discharge the record still takes a waste or a correction (``visits.check_medication_entry``)."""
        entry = validated(MedicationEntrySchema(), entry)
        appointment = self._visit_of(appointment_id, actor)
        visit = appointment.get("visit") or {}
        try:
            check_medication_entry(visit.get("state"), entry["kind"])
        except StepRefused as refused:
            raise IllegalVisitStep(str(refused), reason=refused.reason, state=visit.get("state")) from refused
        entry_id = self.store.creation_id("csl")
        if (first := self.store.db.controlled_substance_log.find_one({"_id": entry_id})) is not None:
            return _log_view(first)
        if entry["kind"] == "correction" and not self.store.db.controlled_substance_log.count_documents(
                {"_id": entry["corrects_entry_id"], "appointment_id": appointment["_id"]}, limit=1):
            raise EntryNotFound("no entry of this visit to correct", corrects_entry_id=entry["corrects_entry_id"])
        per_kg = mg_per_kg(entry["amount_mg"], Decimal(str(visit["weight_kg"])) if visit.get("weight_kg") else None)
        record = {**entry, "_id": entry_id, "appointment_id": appointment["_id"],
                  "patient_id": appointment["patient_id"], "nurse_id": appointment["nurse_id"],
                  "visit_type": appointment["visit_type"], "amount_mg": str(entry["amount_mg"]),
                  "mg_per_kg": str(per_kg) if entry["kind"] == "given" and per_kg is not None else None,
                  "weight_kg": visit.get("weight_kg"), "recorded_at": utcnow(), "recorded_by": actor["id"]}
        self.store.db.controlled_substance_log.insert_one(record)
        return _log_view(record)

    @rpc
    def controlled_substance_log(self, query: dict[str, Any], cursor: str | None = None,
                                 limit: int | None = None) -> dict[str, Any]:
        """The controlled-substance record of a date range (UTC dates, both included), oldest first."""
        query = validated(LogRangeSchema(), query)
        since = datetime.combine(query["from_"], time_of_day.min, tzinfo=UTC)
        until = datetime.combine(query["to"] + timedelta(days=1), time_of_day.min, tzinfo=UTC)
        page = fetch_page(self.store.db.controlled_substance_log, {"recorded_at": {"$gte": since, "$lt": until}},
                          "recorded_at", cursor=cursor, limit=limit)
        return {"items": [_log_view(entry) for entry in page.items], "next_cursor": page.next_cursor}

    def _visit_of(self, appointment_id: str, actor: dict[str, str]) -> dict[str, Any]:
        """The appointment, if the actor may record its visit: the assigned nurse or an admin."""
        appointment = self._appointment(appointment_id)
        if not (actor.get("role") == "admin" or (actor.get("role") == "nurse"
                                                 and actor.get("id") == appointment["nurse_id"])):
            raise NotYourVisit("only the assigned nurse or an admin records this visit",
                               appointment_id=appointment["_id"])
        return appointment

    @staticmethod
    def _visit_view(appointment: dict[str, Any]) -> dict[str, Any]:
        visit = appointment.get("visit") or {}
        due = next_vitals_due(visit.get("state"), _started_at(visit), _taken(visit),
                              VISIT_RULES.effective_at()["vitals_every_minutes"])
        return _json({"appointment_id": appointment["_id"], "status": appointment["status"],
                      "state": visit.get("state"), "abort_reason": visit.get("abort_reason"),
                      "chargeable": visit.get("chargeable"), "infusion_minutes": visit.get("infusion_minutes"),
                      "patient_late_minutes": visit.get("patient_late_minutes"), "next_vitals_due_at": due,
                      "steps": visit.get("steps", []), "vitals": visit.get("vitals", [])})

    # --- helpers ------------------------------------------------------------------------------------------

    def _calendar(self, visit_type: str) -> ConfigVersion:
        calendar = CALENDAR.effective_at()
        if visit_type not in calendar["visit_types"]:
            raise InvalidVisitType("unknown visit type", errors={"visit_type": ["unknown visit type"]})
        return calendar

    def _eligible_and_placed(self, patient_id: str, visit_type: str) -> tuple[dict[str, Any], Place]:
        eligibility = self.intake.booking_eligibility(patient_id, visit_type)
        if not eligibility["eligible"]:
            raise PatientNotCleared("the patient may not book yet", reasons=eligibility["reasons"],
                                    rules_version=eligibility["rules_version"])
        located = eligibility.get("location")  # placed by intake at registration; older records: placed now
        place = ((located["latitude"], located["longitude"]) if located
                 else locate(eligibility.get("postal_code") or ""))
        if place is None:
            raise AddressNotLocated("the patient's ZIP code is not in the table of US ZIP codes",
                                    postal_code=eligibility.get("postal_code"))
        return eligibility, place

    def _visit(self, request: dict[str, Any], prefer: str | None = None) -> _Visit:
        calendar = self._calendar(request["visit_type"])
        eligibility, place = self._eligible_and_placed(request["patient_id"], request["visit_type"])
        return self._visit_for(request, calendar, eligibility, place, prefer)

    def _visit_for(self, request: dict[str, Any], calendar: ConfigVersion, eligibility: dict[str, Any], place: Place,
                   prefer: str | None = None, series_checked: bool = False) -> _Visit:
        try:
            window = visit_window(calendar, request["visit_type"], request["start_at"], eligibility["time_zone"],
                                  utcnow())
        except BookingRefused as refused:
            raise TimeNotBookable(str(refused), reason=refused.reason) from refused
        if request.get("series_id") and not series_checked:
            self._check_series(request, window)
        local_day = window.local_start.date()
        nurses = self._nurses_serving(eligibility["state"], eligibility["postal_code"], place, local_day,
                                      request.get("nurse_id"))
        nurses.sort(key=lambda nurse: nurse["_id"] != prefer)  # stable: the preferred nurse first
        return _Visit(request, calendar, eligibility, place, window, nurses, self.store.operation_key)

    def _nurses_serving(self, state: str, postal_code: str, place: Place, day: date,
                        nurse_id: str | None) -> list[dict[str, Any]]:
        """Who may visit the patient: the one asked for (or why not), else every nurse serving the address."""
        if nurse_id is not None:
            nurse = self._nurse(nurse_id)
            reason = why_not(nurse, state, postal_code, place, day)
            if reason is not None:
                raise NurseCannotServePatient("this nurse may not visit this patient", nurse_id=nurse_id,
                                              reason=reason, state=state)
            return [nurse]
        nurses = nurses_for(list(self.store.db.nurses.find({"active": True, "licences.state": state})),
                            state, postal_code, place, day)
        if not nurses:
            raise OutsideServiceArea(f"no nurse with a current licence in {state} serves ZIP code {postal_code}",
                                     state=state, postal_code=postal_code)
        return nurses

    def _nurse(self, nurse_id: str) -> dict[str, Any]:
        nurse = self.store.db.nurses.find_one({"_id": str(nurse_id)})
        if nurse is None:
            raise NurseNotFound(f"no nurse {nurse_id}", nurse_id=nurse_id)
        return nurse

    def _quote(self, hold_id: str, visit: _Visit, expires_at: datetime) -> dict[str, Any]:
        try:
            return self.billing.quote(_json({
                "patient_id": visit.request["patient_id"], "visit_type": visit.request["visit_type"],
                "hold_id": hold_id, "start_at": visit.window.start_at, "expires_at": expires_at,
                "postal_code": visit.eligibility["postal_code"],
                "discount_codes": visit.request.get("discount_codes", [])}))
        except RemoteDomainError as refused:
            if refused.status >= 500:
                raise
            raise VisitNotPriced(f"billing cannot price this visit: {refused.detail}",
                                 billing_code=refused.code) from refused

    def _claim_first_free(self, visit: _Visit, make: Any, moving: dict[str, Any] | None = None) -> dict[str, Any]:
        """Claim the visit with the first nurse free then (travel counted); ``make(nurse)`` gives the document
        and its events. A new document is inserted; ``moving`` (a booked appointment being rescheduled) is
        updated in one write that claims the new keys and gives up the old ones, only if it has not changed
        meanwhile. ``NoNurseAvailable`` when every nurse is taken."""
        for nurse in visit.nurses:
            document, events = make(nurse)

            def write(claim: Claim, document: dict[str, Any] = document, events: list[Any] = events) -> None:
                document.update(slot_keys=claim.slot_keys, work_day=claim.work_day)
                if moving is None:
                    self.store.insert_with_events("appointments", {**document, "revision_keys": [claim.revision_key]},
                                                  events)
                    return
                changed = {key: value for key, value in document.items() if key != "_id"}
                result = self.store.update_with_events(
                    "appointments", {"_id": moving["_id"], "status": "booked", "start_at": moving["start_at"]},
                    {"$set": changed, "$push": {"revision_keys": claim.revision_key}}, events)
                if result.matched_count == 0:
                    raise AppointmentNotChangeable("the appointment changed meanwhile; read it again",
                                                   appointment_id=moving["_id"])

            try:
                claim_visit(self.store.db, nurse, visit.request["patient_id"], visit.window, visit.place,
                            visit.calendar["travel"], write, moving_id=moving and moving["_id"])
            except NoNurseAvailable:
                continue
            except ClaimContended:
                first = self.store.db.appointments.find_one({"_id": document["_id"]}, HIDDEN)
                if moving is not None or first is None:
                    raise
                return first  # the same operation, executed twice at once, claimed it first
            return self.store.db.appointments.find_one({"_id": document["_id"]}, HIDDEN) if moving else document
        raise NoNurseAvailable("no nurse is free at that time", start_at=visit.window.start_at.isoformat())

    def _booked_event(self, appointment: dict[str, Any]) -> dict[str, Any]:
        payload = {key: appointment[key] for key in ("patient_id", "nurse_id", "visit_type", "start_at", "end_at",
                                                      "time_zone")}
        payload["appointment_id"] = appointment["_id"]
        if appointment.get("postal_code"):
            payload["postal_code"] = appointment["postal_code"]
        if appointment.get("hold_id"):
            payload.update(hold_id=appointment["hold_id"], quote_id=appointment["quote"]["quote_id"])
        if appointment.get("series_id"):
            payload["series_id"] = appointment["series_id"]
        return self.store.event("appointment.booked", payload)


VISIT_STATUS = {"completed": "completed", "discharged": "discharged", "aborted": "aborted", "no_show": "no_show"}
MONITORED = ("pre_checks", "started", "completed")
SESSION_STATUSES = ("booked", "in_progress", "completed", "discharged")  # a series' sessions so far
VISIT_UNDER_WAY = ("booked", "in_progress", "completed")  # appointment statuses in which a visit step may come


FREED_FIELDS = {"hold_id": 1, "patient_id": 1, "nurse_id": 1, "start_at": 1, "end_at": 1}


def _freed(claim: dict[str, Any]) -> dict[str, Any]:
    """The nurse's time a cancelled, moved or lapsed claim gives up: offered to the waitlist by a timer."""
    return {"nurse_id": claim["nurse_id"], "start_at": claim["start_at"], "end_at": claim["end_at"]}


def _started_at(visit: dict[str, Any]) -> datetime | None:
    """When the infusion started (the ``started`` step), if it has."""
    return next((step["at"] for step in visit.get("steps", []) if step["step"] == "started"), None)


def _taken(visit: dict[str, Any]) -> list[datetime]:
    return [reading["taken_at"] for reading in visit.get("vitals", [])]


def _not_in_series_window(outside: SessionOutsideWindow) -> TimeNotBookable:
    """The 422 for a session the series' rules do not allow on its day, naming the session and its dates."""
    return TimeNotBookable(str(outside), reason="outside_series_window", session=outside.upcoming.number,
                           **{"from": str(outside.upcoming.earliest), "to": str(outside.upcoming.latest),
                              "date": str(outside.day)})


def _protocol_of(series: dict[str, Any]) -> dict[str, Any]:
    """The protocol a series was planned with (the protocols version in force when it was planned)."""
    return PROTOCOLS.effective_at(series["created_at"])["protocols"][series["protocol"]]


def _local_days(sessions: list[dict[str, Any]]) -> list[date]:
    return [session["start_at"].astimezone(ZoneInfo(session["time_zone"])).date() for session in sessions]


def _waitlist_view(entry: dict[str, Any]) -> dict[str, Any]:
    return _json({"id": entry["_id"], **{key: value for key, value in entry.items() if key != "_id"}})


def _log_view(entry: dict[str, Any]) -> dict[str, Any]:
    return _json({"id": entry["_id"], **{key: value for key, value in entry.items() if key != "_id"}})


class _Visit:
    """A requested visit that passed every check but the claim: who, what, when, where, and who may go."""

    def __init__(self, request: dict[str, Any], calendar: ConfigVersion, eligibility: dict[str, Any], place: Place,
                 window: VisitWindow, nurses: list[dict[str, Any]], operation_key: str | None) -> None:
        self.request, self.calendar, self.eligibility = request, calendar, eligibility
        self.place, self.window, self.nurses, self.operation_key = place, window, nurses, operation_key

    def document(self, document_id: str, nurse: dict[str, Any]) -> dict[str, Any]:
        return {"_id": document_id, "patient_id": self.request["patient_id"], "nurse_id": nurse["_id"],
                "visit_type": self.request["visit_type"], "start_at": self.window.start_at,
                "end_at": self.window.end_at, "time_zone": self.eligibility["time_zone"],
                "local_start": self.window.local_start.isoformat(), "calendar_version": self.calendar.version,
                "place": list(self.place), "postal_code": self.eligibility["postal_code"],
                "operation_key": self.operation_key,
                **({"series_id": self.request["series_id"]} if self.request.get("series_id") else {})}


def _json(value: Any) -> Any:
    """Datetimes as ISO strings, for RPC answers and requests."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json(item) for item in value]
    return value
