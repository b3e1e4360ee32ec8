"""Notifications: what patients and staff are told, from the other services' events. A thin Nameko shell
around ``domain`` (the rules), ``rendering`` (the templates), ``delivery_log`` (the records) and
``channels`` (SMTP and SMS).

Handlers only *record* messages (one per cause, kind, channel and recipient) and plan reminders; a timer in
every process fires due reminders and sends due messages, each claimed atomically, so that with any number
of processes each is sent once, and a restart loses nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from chassis.clock import as_utc, utcnow
from chassis.errors import InvalidInput
from chassis.events import Event
from chassis.pagination import fetch_page
from chassis.rpc import rpc
from chassis.service import RpcServiceBase
from chassis.store import Store
from chassis.subscriber import subscribe
from services.notifications import delivery_log
from services.notifications.channels import DeliveryFailed, visit_calendar
from services.notifications.dependencies import Channels, ConfiguredTimer, create_indexes, load_message_catalogue
from services.notifications.domain import (
    PlannedReminder,
    Timing,
    carries_calendar,
    expired,
    message_timing,
    message_values,
    patient_channels,
    plan_after_care,
    plan_visit_reminders,
    preference_errors,
    preference_key,
    preference_name,
    reminder_timing,
    too_late,
)
from services.notifications.exceptions import ContactUnknown, PatientUnknown
from services.notifications.rendering import Content, HealthDetailInText, Templates
from services.notifications.schemas import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    BookingFailed,
    HoldPlaced,
    InvoiceCreated,
    MessageSchema,
    Money,
    PatientCleared,
    PatientFact,
    PatientRegistered,
    PatientUpdated,
    ReviewRequested,
    VisitDischarged,
    VisitEnRoute,
    WaitlistOffered,
)

log = logging.getLogger(__name__)

TEMPLATES = Templates()
MESSAGE_CATALOGUE = load_message_catalogue(templates=TEMPLATES)
CONTACT_FIELDS = ("first_name", "email", "phone", "time_zone", "sms_opt_in", "locale")
STOP_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit"}
START_WORDS = {"start", "unstop", "yes"}
HELP_WORDS = {"help", "info"}


class NotificationsService(RpcServiceBase):
    name = "notifications"

    store = Store("notifications", indexes=create_indexes)
    channels = Channels()

    # --- contacts -------------------------------------------------------------------------------------

    @subscribe("intake", "patient.registered", PatientRegistered)
    def remember_contact(self, event: Event) -> None:
        registered = {k: event.payload.get(k) for k in CONTACT_FIELDS}
        self.store.db.contacts.update_one({"_id": event.payload["patient_id"]},
                                          {"$set": {"registered": registered}}, upsert=True)
        self._tell_patient(event, "patient.registered")

    @subscribe("intake", "patient.updated", PatientUpdated)
    def update_contact(self, event: Event) -> None:
        changed = {f"updates.{k}": v for k, v in event.payload.items() if k in CONTACT_FIELDS}
        if changed:
            self.store.db.contacts.update_one({"_id": event.payload["patient_id"]}, {"$set": changed}, upsert=True)

    # --- intake's facts ---------------------------------------------------------------------------------

    @subscribe("intake", "screening.submitted", PatientFact)
    def acknowledge_screening(self, event: Event) -> None:
        self._tell_patient(event, "screening.submitted")

    @subscribe("intake", "patient.cleared", PatientCleared)
    def announce_clearance(self, event: Event) -> None:
        self._tell_patient(event, "patient.cleared")

    @subscribe("intake", "patient.declined", PatientFact)
    def announce_decline(self, event: Event) -> None:
        self._tell_patient(event, "patient.declined")

    @subscribe("intake", "review.requested", ReviewRequested)
    def alert_urgent_review(self, event: Event) -> None:
        """An urgent review goes to the responsible clinician and the on-call address; never to the patient."""
        if not event.payload["urgent"]:
            return
        catalogue = MESSAGE_CATALOGUE.effective_at()
        values = message_values(catalogue, "review.urgent", event.payload, "UTC", "")
        at_once = Timing(utcnow())
        addresses = self.channels.staff_addresses(event.payload.get("clinician_id"))
        for to in addresses:
            self._record(event.event_id, catalogue, "review.urgent", "email", to, values, locale=None,
                         patient_id=None, about=event.payload["patient_id"], timing=at_once)
        if not addresses:  # an urgent safety review must never vanish quietly
            reason = (f"no staff address: neither ON_CALL_EMAIL nor CLINICIAN_EMAILS for clinician "
                      f"{event.payload.get('clinician_id')!r} is configured")
            log.error("urgent review %s of patient %s alerted nobody: %s", event.payload["review_id"],
                      event.payload["patient_id"], reason)
            self._record(event.event_id, catalogue, "review.urgent", "email", None, values, locale=None,
                         patient_id=None, about=event.payload["patient_id"], timing=at_once, unsendable=reason)

    # --- scheduling's facts -------------------------------------------------------------------------------

    @subscribe("scheduling", "hold.placed", HoldPlaced)
    def confirm_hold(self, event: Event) -> None:
        self._tell_patient(event, "hold.placed", expires_at=event.payload["expires_at"])

    @subscribe("scheduling", "appointment.booked", AppointmentBooked)
    def confirm_appointment(self, event: Event) -> None:
        booked = event.payload
        self.store.insert_once("appointments", {
            "_id": booked["appointment_id"], "patient_id": booked["patient_id"], "status": "booked",
            "visit_type": booked["visit_type"], "start_at": booked["start_at"], "end_at": booked["end_at"],
            "time_zone": booked["time_zone"], "left_starts": []})
        self._tell_patient(event, "appointment.booked")
        self._plan_visit_reminders(booked["appointment_id"])

    @subscribe("scheduling", "appointment.rescheduled", AppointmentRescheduled)
    def confirm_new_time(self, event: Event) -> None:
        moved = event.payload
        fields = {"patient_id": moved["patient_id"], "visit_type": moved["visit_type"],
                  "start_at": moved["start_at"], "end_at": moved["end_at"], "time_zone": moved["time_zone"]}
        if not self.store.insert_once("appointments", {"_id": moved["appointment_id"], "status": "booked",
                                                       "left_starts": [moved["previous_start_at"]], **fields}):
            # a move to a time the visit has already left is an older move arriving late: it changes nothing
            self.store.db.appointments.update_one(
                {"_id": moved["appointment_id"], "status": "booked", "left_starts": {"$ne": moved["start_at"]}},
                {"$set": fields, "$addToSet": {"left_starts": moved["previous_start_at"]}})
        self._tell_patient(event, "appointment.rescheduled")
        self._plan_visit_reminders(moved["appointment_id"])

    @subscribe("scheduling", "appointment.cancelled", AppointmentCancelled)
    def confirm_cancellation(self, event: Event) -> None:
        cancelled = event.payload
        self.store.db.appointments.update_one(
            {"_id": cancelled["appointment_id"]},
            {"$set": {"status": "cancelled", "patient_id": cancelled["patient_id"]}}, upsert=True)
        delivery_log.drop_reminders(self.store.db, cancelled["appointment_id"], "the visit was cancelled")
        self._tell_patient(event, "appointment.cancelled")

    @subscribe("scheduling", "booking.failed", BookingFailed)
    def announce_failed_booking(self, event: Event) -> None:
        self._tell_patient(event, "booking.failed")

    @subscribe("scheduling", "waitlist.offered", WaitlistOffered)
    def offer_waitlisted_time(self, event: Event) -> None:
        self._tell_patient(event, "waitlist.offered", expires_at=event.payload["expires_at"])

    @subscribe("scheduling", "visit.en_route", VisitEnRoute)
    def announce_nurse_en_route(self, event: Event) -> None:
        self._tell_patient(event, "visit.en_route", expires_at=event.payload["arrival_to"])

    @subscribe("scheduling", "visit.discharged", VisitDischarged)
    def follow_up_discharge(self, event: Event) -> None:
        discharged = event.payload
        catalogue = MESSAGE_CATALOGUE.effective_at()
        self._plan(catalogue, plan_after_care(catalogue, discharged["discharged_at"], discharged["time_zone"]),
                   {**discharged, "start_at": None})

    # --- billing's facts ----------------------------------------------------------------------------------

    @subscribe("billing", "invoice.created", InvoiceCreated)
    def announce_invoice(self, event: Event) -> None:
        self._tell_patient(event, "invoice.created")

    @subscribe("billing", "deposit.paid", Money)
    def acknowledge_deposit(self, event: Event) -> None:
        self._tell_patient(event, "deposit.paid")

    @subscribe("billing", "payment.succeeded", Money)
    def send_receipt(self, event: Event) -> None:
        self._tell_patient(event, "payment.succeeded")

    @subscribe("billing", "payment.failed", Money)
    def announce_failed_payment(self, event: Event) -> None:
        self._tell_patient(event, "payment.failed")

    @subscribe("billing", "refund.issued", Money)
    def announce_refund(self, event: Event) -> None:
        self._tell_patient(event, "refund.issued")

    @subscribe("billing", "fee.charged", Money)
    def announce_fee(self, event: Event) -> None:
        self._tell_patient(event, "fee.charged")

    # --- the timer: reminders due, then messages due ------------------------------------------------------

    @ConfiguredTimer.decorator(setting="DELIVERY_POLL_SECONDS", interval=1.0)
    def deliver_due(self) -> None:
        for _ in range(self.channels.batch_size):
            if not self._fire_one_reminder():
                break
        for _ in range(self.channels.batch_size):
            if not self._send_one_message():
                break

    def _fire_one_reminder(self) -> bool:
        db = self.store.db
        reminder = delivery_log.claim_due_reminder(db, self.channels.lease)
        if reminder is None:
            return False
        now = utcnow()
        if reminder["start_at"] is not None:
            appointment = db.appointments.find_one({"_id": reminder["appointment_id"]}) or {}
            if appointment.get("status") != "booked" or as_utc(appointment["start_at"]) != as_utc(
                    reminder["start_at"]):
                delivery_log.settle_reminder(db, reminder, "dropped", "the visit was cancelled or moved")
                return True
        due_at = as_utc(reminder["due_at"])
        if too_late(due_at, timedelta(seconds=reminder["tolerance_seconds"]), now):
            delivery_log.settle_reminder(db, reminder, "skipped", f"{now - due_at} late: past its tolerance")
            return True
        contact = self._find_contact(reminder["patient_id"])
        if contact is None:
            delivery_log.release_reminder(db, reminder, now + self.channels.lease, "waiting for contact details")
            return True
        catalogue = MESSAGE_CATALOGUE.effective_at()
        payload = {"start_at": reminder["start_at"] and as_utc(reminder["start_at"]),
                   "visit_type": reminder["visit_type"]}
        timing = reminder_timing(due_at, timedelta(seconds=reminder["tolerance_seconds"]), now)
        self._record_for_patient(reminder["_id"], catalogue, reminder["kind"], contact, payload,
                                 reminder["time_zone"] or contact["time_zone"], timing)
        delivery_log.settle_reminder(db, reminder, "sent", "messages recorded")
        return True

    def _send_one_message(self) -> bool:
        db = self.store.db
        message = delivery_log.claim_due_message(db, self.channels.configured, self.channels.lease)
        if message is None:
            return False
        now = utcnow()
        expires_at = message.get("expires_at") and as_utc(message["expires_at"])
        if expired(expires_at, now):
            delivery_log.mark_failed(db, message, f"no longer of use: it expired at {expires_at.isoformat()}, "
                                                  f"{now - expires_at} before this attempt, unsent", "skipped")
            return True
        if message["attempts"] > self.channels.retry.max_attempts:  # its senders kept dying mid-send
            delivery_log.mark_failed(db, message, f"gave up: {message.get('last_error') or 'no outcome recorded'}")
            return True
        try:
            try:
                provider_id = self.channels.send(message)
            except DeliveryFailed:
                raise
            except Exception as unexpected:  # a bug or an odd answer: retried like a transient failure
                raise DeliveryFailed(f"unexpected error: {unexpected!r}") from unexpected
        except DeliveryFailed as exc:
            wait = None if exc.permanent else self.channels.retry.delay(message["attempts"])
            if wait is None:
                log.error("message %s (%s by %s) failed: %s", message["_id"], message["kind"], message["channel"], exc)
                delivery_log.mark_failed(db, message, str(exc))
            else:
                log.warning("message %s (%s by %s) attempt %d failed, retrying in %s: %s", message["_id"],
                            message["kind"], message["channel"], message["attempts"], wait, exc)
                delivery_log.mark_retry(db, message, str(exc), now + wait)
            return True
        delivery_log.mark_sent(db, message, provider_id)
        return True

    # --- RPC ----------------------------------------------------------------------------------------------

    @rpc
    def list_messages(self, patient_id: str, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """A page of the patient's delivery log, oldest first."""
        page = fetch_page(self.store.db.messages, {"patient_id": str(patient_id)}, "created_at",
                          cursor=cursor, limit=limit)
        return {"items": MessageSchema(many=True).dump(page.items), "next_cursor": page.next_cursor}

    @rpc
    def set_preferences(self, patient_id: str, preferences: dict[str, Any]) -> dict[str, Any]:
        """Switch message categories on or off per channel (``{"sms": {"reminders": false}}``)."""
        catalogue = MESSAGE_CATALOGUE.effective_at()
        errors = preference_errors(catalogue, preferences)
        if errors:
            raise InvalidInput("unknown or invalid preferences", errors=errors)
        changes = {f"preferences.{channel}.{preference_key(name)}": value
                   for channel, switches in preferences.items() for name, value in switches.items()}
        contact = self.store.db.contacts.find_one_and_update(
            {"_id": str(patient_id), "registered": {"$exists": True}}, {"$set": changes} if changes else
            {"$set": {"preferences_seen_at": utcnow()}}, return_document=True)
        if contact is None:
            raise PatientUnknown(f"no patient {patient_id} to set preferences for")
        return self._preferences_of(catalogue, contact)

    @rpc
    def get_preferences(self, patient_id: str) -> dict[str, Any]:
        contact = self.store.db.contacts.find_one({"_id": str(patient_id), "registered": {"$exists": True}})
        if contact is None:
            raise PatientUnknown(f"no patient {patient_id}")
        return self._preferences_of(MESSAGE_CATALOGUE.effective_at(), contact)

    @rpc
    def sms_received(self, sender: str, text: str) -> dict[str, Any]:
        """An inbound text: STOP (and its synonyms) stops every text to that number, START resumes them,
        HELP answers with the clinic's number. Returns the reply to text back (or None)."""
        word = text.strip().lower()
        clinic = MESSAGE_CATALOGUE.effective_at()["clinic"]
        if word in STOP_WORDS:
            self._set_stopped(sender, True)
            return {"action": "stopped", "reply": None}
        if word in START_WORDS:
            self._set_stopped(sender, False)
            return {"action": "started", "reply": f"{clinic['name']}: texts are back on. Reply STOP to opt out."}
        if word in HELP_WORDS:
            return {"action": "help", "reply": f"{clinic['name']}: call {clinic['phone']}; in an emergency call "
                                               f"{clinic['emergency_number']}. Reply STOP to opt out."}
        return {"action": "ignored", "reply": None}

    # --- helpers --------------------------------------------------------------------------------------------

    def _set_stopped(self, phone: str, stopped: bool) -> None:
        db = self.store.db
        for field in ("registered.phone", "updates.phone"):
            db.contacts.update_many({field: phone}, {"$set": {"sms_stopped": stopped}})

    @staticmethod
    def _preferences_of(catalogue: Any, contact: dict[str, Any]) -> dict[str, Any]:
        switched = contact.get("preferences") or {}
        return {"patient_id": contact["_id"], "sms_stopped": bool(contact.get("sms_stopped")),
                **{channel: {**dict.fromkeys(catalogue["categories"], True),
                             **{preference_name(key): value for key, value in switched.get(channel, {}).items()}}
                   for channel in ("email", "sms")}}

    def _find_contact(self, patient_id: str) -> dict[str, Any] | None:
        document = self.store.db.contacts.find_one({"_id": patient_id})
        if document is None or "registered" not in document:
            return None
        preferences = {channel: {preference_name(key): value for key, value in switches.items()}
                       for channel, switches in (document.get("preferences") or {}).items()}
        return {**document["registered"], **(document.get("updates") or {}), "_id": patient_id,
                "sms_stopped": document.get("sms_stopped"), "preferences": preferences}

    def _tell_patient(self, event: Event, kind: str, expires_at: datetime | None = None) -> None:
        """Record the messages an event sends its patient; waits (``NotYet``) for the contact details. The
        email carries the visit's calendar file when the catalogue says ``calendar: true`` for the kind."""
        contact = self._find_contact(event.payload["patient_id"])
        if contact is None:
            raise ContactUnknown(f"no contact details yet for {event.payload['patient_id']}")
        catalogue = MESSAGE_CATALOGUE.effective_at()
        time_zone = event.payload.get("time_zone") or contact["time_zone"]
        timing = message_timing(catalogue, kind, utcnow(), contact["time_zone"], self.channels.quiet_hours,
                                expires_at)
        calendar = self._calendar(event, catalogue) if carries_calendar(catalogue, kind) else None
        self._record_for_patient(event.event_id, catalogue, kind, contact, event.payload, time_zone, timing,
                                 calendar)

    def _record_for_patient(self, cause: str, catalogue: Any, kind: str, contact: dict[str, Any],
                            payload: dict[str, Any], time_zone: str, timing: Timing,
                            calendar: str | None = None) -> None:
        values = message_values(catalogue, kind, payload, time_zone, contact["first_name"])
        for channel, to in patient_channels(catalogue, kind, contact):
            self._record(cause, catalogue, kind, channel, to, values, contact.get("locale"), contact["_id"],
                         contact["_id"], timing, calendar if channel == "email" else None)

    def _record(self, cause: str, catalogue: Any, kind: str, channel: str, to: str | None, values: dict[str, Any],
                locale: str | None, patient_id: str | None, about: str, timing: Timing,
                calendar: str | None = None, unsendable: str | None = None) -> None:
        """Record one message; ``unsendable`` records it failed at once with that reason (never sent)."""
        outcome = {"status": "failed", "last_error": unsendable} if unsendable else {}
        try:
            content = TEMPLATES.render(catalogue, kind, channel, locale, values)
        except HealthDetailInText as exc:  # a value (a name, say) would put a health word in a text: never sent
            content, outcome = Content(""), {"status": "failed", "last_error": f"refused: {exc}"}
        delivery_log.record(self.store.db, {
            "_id": delivery_log.delivery_id(cause, kind, channel, to or ""), "patient_id": patient_id,
            "about": about, "kind": kind, "channel": channel, "to": to, "subject": content.subject,
            "body": content.text, "html": content.html, "calendar": calendar, "not_before": timing.not_before,
            "expires_at": timing.expires_at, "templates_version": catalogue.version,
            "locale": TEMPLATES.locale_for(locale), "caused_by": cause, **outcome})

    def _calendar(self, event: Event, catalogue: Any) -> str:
        visit = event.payload
        return visit_calendar(visit["appointment_id"], visit["start_at"], visit["end_at"],
                              sequence=int(event.occurred_at.timestamp()),
                              organizer_name=catalogue["clinic"]["name"], domain=self.channels.calendar_domain)

    def _plan_visit_reminders(self, appointment_id: str) -> None:
        """Plan the reminders of the visit's current time; drop those of any time it has left."""
        db = self.store.db
        appointment = db.appointments.find_one({"_id": appointment_id})
        if appointment is None or appointment["status"] != "booked":
            return
        start_at = as_utc(appointment["start_at"])
        catalogue = MESSAGE_CATALOGUE.effective_at()
        self._plan(catalogue, plan_visit_reminders(catalogue, start_at, appointment["visit_type"],
                                                   appointment["time_zone"]),
                   {**appointment, "appointment_id": appointment_id, "start_at": start_at})
        delivery_log.drop_reminders(db, appointment_id, "the visit moved", keep_start_at=start_at)

    def _plan(self, catalogue: Any, reminders: list[PlannedReminder], visit: dict[str, Any]) -> None:
        """Store planned reminders, each once (its id derives from the visit, its kind and start time)."""
        for planned in reminders:
            delivery_log.plan_reminder(self.store.db, {
                "_id": delivery_log.reminder_id(visit["appointment_id"], planned.kind, visit["start_at"]),
                "appointment_id": visit["appointment_id"], "patient_id": visit["patient_id"], "kind": planned.kind,
                "due_at": planned.due_at, "tolerance_seconds": planned.tolerance.total_seconds(),
                "start_at": visit["start_at"], "visit_type": visit["visit_type"], "time_zone": visit["time_zone"],
                "catalogue_version": catalogue.version})
