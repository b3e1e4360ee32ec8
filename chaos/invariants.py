"""What must hold after the chaos, measured from the stores (and the broker) once the platform has settled.

An invariant is a function ``(stores, journal, run) -> Figure``: a figure with what was measured and its
target, violated when they differ. The service issues add theirs to ``INVARIANTS``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import requests
from pymongo.database import Database

from chaos.flows import Journal
from chassis.clock import utcnow
from services.billing import exports, ledger, packages
from services.billing.payments import Payments
from services.scheduling.dependencies import load_protocols
from services.scheduling.series import SessionOutsideWindow, check_moved_session
from services.scheduling.service import SESSION_STATUSES


@dataclass(frozen=True)
class Figure:
    name: str
    measured: int
    target: int
    detail: str = ""

    @property
    def holds(self) -> bool:
        return self.measured == self.target


@dataclass
class Stores:
    """The services' databases, read directly (the harness is the auditor, not a client)."""

    intake: Database
    scheduling: Database
    billing: Database
    notifications: Database

    def all(self) -> dict[str, Database]:
        return {"intake": self.intake, "scheduling": self.scheduling, "billing": self.billing,
                "notifications": self.notifications}


def accepted_registrations_lost(stores: Stores, journal: Journal, run: Any) -> Figure:
    accepted = journal.accepted.get("registration", [])
    stored = {p["_id"] for p in stores.intake.patients.find({}, {"_id": 1})}
    lost = [r["id"] for r in accepted if r["id"] not in stored]
    return Figure("registrations accepted but not stored (lost)", len(lost), 0,
                  f"{len(accepted)} accepted, {len(stored)} stored")


#: Appointments that were booked (directly, or from a paid hold); holds never booked have no ``booked_at``.
BOOKED = {"booked_at": {"$exists": True}}
#: Claims that hold a nurse's and a patient's time: live holds and booked visits, under way or given.
LIVE = ["held", "booked", "in_progress", "completed", "discharged"]


def accepted_bookings_lost(stores: Stores, journal: Journal, run: Any) -> Figure:
    accepted = [b["id"] for b in journal.accepted.get("booking", []) + journal.accepted.get("paid booking", [])]
    accepted += [a for b in journal.accepted.get("series booking", []) for a in b["appointments"]]
    stored = {a["_id"] for a in stores.scheduling.appointments.find(BOOKED, {"_id": 1})}
    lost = [b for b in accepted if b not in stored]
    return Figure("bookings accepted but not stored (lost)", len(lost), 0,
                  f"{len(accepted)} accepted (direct, from paid holds and series sessions), {len(stored)} stored")


def series_outside_their_rules(stores: Stores, journal: Journal, run: Any) -> Figure:
    """Every series' sessions, taken in date order, are ones its protocol allows booked one by one (a day apart,
    within its span), whatever was booked at once, moved or paid late."""
    wrong, checked = 0, 0
    for series in stores.scheduling.series.find({}):
        sessions = list(stores.scheduling.appointments.find(
            {"series_id": series["_id"], **BOOKED, "status": {"$in": list(SESSION_STATUSES)}}))
        if not sessions:
            continue
        checked += 1
        protocol = load_protocols().effective_at(series["created_at"])["protocols"][series["protocol"]]
        days = sorted(s["start_at"].astimezone(ZoneInfo(s["time_zone"])).date() for s in sessions)
        try:
            check_moved_session(protocol, series["planned_sessions"], days[:-1], days[-1])
        except SessionOutsideWindow:
            wrong += 1
    return Figure("series whose sessions break their protocol's rules", wrong, 0,
                  f"{checked} series with sessions; {len(journal.accepted.get('series booking', []))} booked at once")


def appointments_per_booking_key(stores: Stores, journal: Journal, run: Any) -> Figure:
    """Each patient of the load makes one booking operation, with one key: so at most one appointment each, or
    one series booking (whose sessions share its ``series_booking_id``)."""
    results = {(a["patient_id"], a.get("series_booking_id") or a["_id"])
               for a in stores.scheduling.appointments.find({}, {"patient_id": 1, "series_booking_id": 1})}
    per_patient = Counter(patient_id for patient_id, _ in results)
    worst = max(per_patient.values(), default=1)
    twice = sum(1 for count in per_patient.values() if count > 1)
    return Figure("most appointments for one idempotency key", worst, 1, f"{twice} keys with more than one")


def _overlaps(appointments: list[dict[str, Any]], owner: str) -> int:
    by_owner: dict[str, list[dict[str, Any]]] = {}
    for appointment in appointments:
        by_owner.setdefault(appointment[owner], []).append(appointment)
    overlapping = 0
    for visits in by_owner.values():
        visits.sort(key=lambda a: a["start_at"])
        overlapping += sum(1 for before, after in zip(visits, visits[1:], strict=False)
                           if after["start_at"] < before["end_at"])
    return overlapping


def overlapping_visits(stores: Stores, journal: Journal, run: Any) -> list[Figure]:
    live = list(stores.scheduling.appointments.find({"status": {"$in": LIVE}},
                                                    {"nurse_id": 1, "patient_id": 1, "start_at": 1, "end_at": 1}))
    return [Figure("overlapping holds or visits of one nurse", _overlaps(live, "nurse_id"), 0),
            Figure("overlapping holds or visits of one patient", _overlaps(live, "patient_id"), 0)]


def invoices_per_appointment(stores: Stores, journal: Journal, run: Any) -> Figure:
    appointments = [a["_id"] for a in stores.scheduling.appointments.find(BOOKED, {"_id": 1})]
    invoices = Counter(i["appointment_id"] for i in stores.billing.invoices.find({}, {"appointment_id": 1}))
    wrong = [a for a in appointments if invoices.get(a, 0) != 1]
    return Figure("appointments without exactly one invoice", len(wrong), 0,
                  f"{len(appointments)} appointments, {sum(invoices.values())} invoices")


def future_infusions_left_after_consent_revoked(stores: Stores, journal: Journal, run: Any) -> Figure:
    """A patient who withdrew consent (and did not sign again) has every infusion after that moment cancelled."""
    left, revoked_patients = [], 0
    for patient in stores.intake.patients.find({"consents.revoked_at": {"$ne": None}}, {"consents": 1}):
        consents = patient.get("consents", [])
        if any(c.get("revoked_at") is None for c in consents):
            continue  # consented again since
        revoked_patients += 1
        revoked_at = min(c["revoked_at"] for c in consents)
        left += [a["_id"] for a in stores.scheduling.appointments.find(
            {"patient_id": patient["_id"], "visit_type": {"$ne": "consult"}, "start_at": {"$gt": revoked_at},
             "status": {"$in": LIVE}}, {"_id": 1})]
    return Figure("future infusions not cancelled after consent was revoked", len(left), 0,
                  f"{revoked_patients} patients revoked consent")


#: Messages recorded but not yet delivered (nor given up): none may be left once the platform has settled.
UNDELIVERED = {"status": {"$in": ["pending", "sending"]}}


def messages_per_event_channel_recipient(stores: Stores, journal: Journal, run: Any) -> Figure:
    recorded = Counter((m.get("caused_by"), m.get("kind"), m.get("channel"), m.get("to")) for m in
                       stores.notifications.messages.find({}, {"caused_by": 1, "kind": 1, "channel": 1, "to": 1}))
    return Figure("most messages for one (event, kind, channel, recipient)", max(recorded.values(), default=1), 1,
                  f"{sum(recorded.values())} messages recorded")


def messages_not_delivered(stores: Stores, journal: Journal, run: Any) -> Figure:
    statuses = Counter(m["status"] for m in stores.notifications.messages.find({}, {"status": 1}))
    return Figure("messages still waiting after the outages", statuses["pending"] + statuses["sending"], 0,
                  ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))


def messages_received_vs_sent(stores: Stores, journal: Journal, run: Any) -> list[Figure]:
    """What the mail server and the SMS provider received, against the delivery log: each sent message
    arrived, nothing arrived twice (an email is known by its Message-ID, which is its record's id)."""
    import email
    import json

    sent = Counter(m["channel"] for m in stores.notifications.messages.find({"status": "sent"}, {"channel": 1}))
    mail_ids = Counter()
    for path in (run.work_dir / "mail").glob("*.eml"):
        mail_ids[email.message_from_bytes(path.read_bytes()).get("Message-ID", path.name)] += 1
    texts = [json.loads(path.read_text()) for path in (run.work_dir / "sms").glob("*.json")]
    twice = [message_id.strip("<>").split("@")[0] for message_id, n in mail_ids.items() if n > 1]
    # A sender killed after the mail server took a message but before its record said so sends it again when
    # its lease ends (README: at least once, for that window only): its record then shows a second attempt.
    # A message received twice from a single attempt would be a real double send.
    resent = {m["_id"] for m in stores.notifications.messages.find({"_id": {"$in": twice}, "attempts": {"$gt": 1}},
                                                                    {"_id": 1})}
    return [Figure("emails received more than once from a single send attempt", len(set(twice) - resent), 0,
                   f"{sum(mail_ids.values())} received; {len(resent)} sent again after their sender died "
                   "between the mail server's answer and the record (the at-least-once window)"),
            Figure("emails sent but not received, or received but not sent", abs(sent["email"] - len(mail_ids)), 0,
                   f"{sent['email']} sent, {len(mail_ids)} distinct received"),
            Figure("texts sent but not received", max(sent["sms"] - len(texts), 0), 0,
                   f"{sent['sms']} sent, {len(texts)} received"),
            _texts_received_twice(stores, sent["sms"], len(texts))]


def _texts_received_twice(stores: Stores, sent: int, received: int) -> Figure:
    """A text carries no id of ours, so a resend cannot be matched to its record as an email can; but each text
    sent again after its sender died mid-send has a record with more than one attempt. More extra texts than
    such records would be a real double send."""
    extra = max(received - sent, 0)
    retried = stores.notifications.messages.count_documents({"channel": "sms", "status": "sent",
                                                             "attempts": {"$gt": 1}})
    return Figure("texts received more often than sent, beyond what resends after a crash explain",
                  max(extra - retried, 0), 0,
                  f"{extra} extra; {retried} texts needed more than one attempt (provider refusals or a sender "
                  "that died mid-send: the at-least-once window)")


def events_left_in_outboxes(stores: Stores, journal: Journal, run: Any) -> Figure:
    left = 0
    for db in stores.all().values():
        for name in db.list_collection_names():
            for document in db[name].find({"outbox.0": {"$exists": True}}, {"outbox": 1}):
                left += len(document["outbox"])
    return Figure("events left in outboxes", left, 0)


def dead_letters_vs_poison(stores: Stores, journal: Journal, run: Any) -> Figure:
    letters = run.dead_letters()
    healthy = [letter for letter in letters if not letter.event_id or not letter.event_id.startswith("evt_poison")]
    return Figure("dead letters (target: the poison events injected)", len(letters), run.poison_injected,
                  f"{len(healthy)} of them not poison" if healthy else "")


def bookings_of_patients_not_eligible_then(stores: Stores, journal: Journal, run: Any) -> Figure:
    """Every infusion booked was booked after a clinician's approval and under a consent standing at that
    moment (a free consultation needs neither)."""
    wrong = []
    appointments = list(stores.scheduling.appointments.find({"visit_type": {"$ne": "consult"}, **BOOKED},
                                                           {"patient_id": 1, "booked_at": 1}))
    for appointment in appointments:
        booked_at = appointment["booked_at"]
        patient = stores.intake.patients.find_one({"_id": appointment["patient_id"]}, {"reviews": 1, "consents": 1})
        approved = any(r.get("status") == "approved" and r.get("decided_at") and r["decided_at"] <= booked_at
                       for r in (patient or {}).get("reviews", []))
        consented = any(c["signed_at"] <= booked_at and (c.get("revoked_at") is None or c["revoked_at"] > booked_at)
                        for c in (patient or {}).get("consents", []))
        reviewing = any(r["opened_at"] <= booked_at and (r.get("decided_at") is None or r["decided_at"] > booked_at)
                        for r in (patient or {}).get("reviews", []))  # an open review (urgent or not) blocks
        if not (approved and consented) or reviewing:
            wrong.append(appointment["_id"])
    return Figure("infusions booked for a patient not eligible at that moment", len(wrong), 0,
                  f"{len(appointments)} infusions checked; "
                  f"{len(journal.accepted.get('booking before clearance', []))} accepted before clearance")


def risk_answers_decided_by_a_program(stores: Stores, journal: Journal, run: Any) -> list[Figure]:
    """A patient who gave a risk answer is cleared or declined only by a clinician's decision on a review, never
    by the rules; and every such answer was met with crisis resources."""
    wrong, patients = 0, 0
    for patient in stores.intake.patients.find({"screenings.risk_items.0": {"$exists": True}},
                                               {"reviews": 1, "outcome": 1}):
        patients += 1
        decided = [r for r in patient.get("reviews", []) if r.get("status") in ("approved", "declined")]
        if patient.get("outcome") in ("cleared", "declined") and not decided:
            wrong += 1
    without_help = [r for r in journal.accepted.get("risk answer", []) if not r["crisis_resources"]]
    return [Figure("risk answers decided by a program (not a clinician)", wrong, 0,
                   f"{patients} patients gave a risk answer; "
                   f"{len(journal.accepted.get('urgent review approved', []))} approved and "
                   f"{len(journal.accepted.get('urgent review declined', []))} declined by a clinician"),
            Figure("risk answers answered without crisis resources", len(without_help), 0,
                   f"{len(journal.accepted.get('booking during an urgent review', []))} bookings accepted "
                   "during an urgent review (counted by the eligibility invariant)")]


def reminders_due() -> dict[str, Any]:
    """Reminders whose moment has come that are neither settled (sent, skipped, dropped) nor left to wait."""
    return {"$or": [{"status": "planned", "due_at": {"$lte": utcnow()}}, {"status": "firing"}]}


def reminders_not_fired(stores: Stores, journal: Journal, run: Any) -> Figure:
    statuses = Counter(r["status"] for r in stores.notifications.reminders.find({}, {"status": 1}))
    return Figure("reminders due but not fired (lost)", stores.notifications.reminders.count_documents(reminders_due()),
                  0, ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))


def paid_holds_neither_booked_nor_refunded(stores: Stores, journal: Journal, run: Any) -> Figure:
    """Every deposit paid ends in a booked visit (the deposit then counts towards its invoice) or is refunded in
    full (a hold that lapsed and whose time was taken meanwhile: ``booking.failed``)."""
    deposits = list(stores.billing.journal.find({"kind": "deposit"}, {"outbox": 0}))
    wrong, refunded = [], 0
    for deposit in deposits:
        hold = stores.scheduling.appointments.find_one({"hold_id": deposit["hold_id"]}, {"booked_at": 1}) or {}
        if hold.get("booked_at"):
            continue
        paid = -ledger.total([deposit], "deposits_held")
        refunds = list(stores.billing.journal.find({"kind": "refund", "hold_id": deposit["hold_id"]}, {"outbox": 0}))
        if -ledger.total(refunds, "cash_at_stripe") == paid:
            refunded += 1
        else:
            wrong.append(deposit["hold_id"])
    return Figure("paid holds neither booked nor refunded in full", len(wrong), 0,
                  f"{len(deposits)} deposits paid, {refunded} refunded in full")


def visit_steps_recorded_twice(stores: Stores, journal: Journal, run: Any) -> Figure:
    twice, visits = 0, 0
    for appointment in stores.scheduling.appointments.find({"visit.steps.0": {"$exists": True}}, {"visit.steps": 1}):
        visits += 1
        steps = Counter(step["step"] for step in appointment["visit"]["steps"])
        twice += sum(count - 1 for count in steps.values() if count > 1)
    return Figure("visit steps recorded twice", twice, 0, f"{visits} visits recorded, "
                  f"{len(journal.accepted.get('visit given', []))} given and "
                  f"{len(journal.accepted.get('visit aborted', []))} aborted by the load")


def given_visits_not_charged(stores: Stores, journal: Journal, run: Any) -> Figure:
    """After a visit was given its balance is charged (the invoice settled) or its failure recorded."""
    given = [a["_id"] for a in stores.scheduling.appointments.find({"status": {"$in": ["completed", "discharged"]}},
                                                                   {"_id": 1})]
    invoices = {i["appointment_id"]: i for i in stores.billing.invoices.find(
        {"appointment_id": {"$in": given}}, {"appointment_id": 1, "status": 1, "balance_failure": 1})}
    wrong = [a for a in given if a not in invoices or not (
        invoices[a]["status"] == "settled" or invoices[a].get("balance_failure"))]
    failed = sum(1 for i in invoices.values() if i["status"] != "settled" and i.get("balance_failure"))
    return Figure("visits given whose balance was neither charged nor reported failed", len(wrong), 0,
                  f"{len(given)} visits given; {failed} balances declined off-session (payment.failed)")


def ledger_not_balancing(stores: Stores, journal: Journal, run: Any) -> Figure:
    entries = list(stores.billing.journal.find({}, {"outbox": 0}))
    found = ledger.problems(entries)
    return Figure("journal entries (or the whole ledger) not summing to zero", len(found), 0,
                  f"{len(entries)} entries" + (f"; {found[:3]}" if found else ""))


def _stripe_list(run: Any, kind: str) -> list[dict[str, Any]]:
    """Every object of a kind at the Stripe stand-in, page by page."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = requests.get(f"{run.stripe_base}/v1/{kind}", params=params, timeout=30,
                            headers={"Authorization": f"Bearer {run.platform.env['STRIPE_API_KEY']}"}).json()
        found += page["data"]
        if not page.get("has_more") or not page["data"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]


def charges_per_business_operation(stores: Stores, journal: Journal, run: Any) -> list[Figure]:
    """At Stripe (the stand-in's own records): each business operation (a hold's deposit, an appointment's
    balance, a package) charged successfully at most once, and each refund operation refunded at most once."""
    intents = {pi["id"]: pi.get("metadata") or {} for pi in _stripe_list(run, "payment_intents")}
    charged: Counter[tuple[str, str]] = Counter()
    for charge in _stripe_list(run, "charges"):
        if charge.get("status") == "succeeded" and charge.get("payment_intent") in intents:
            about = intents[charge["payment_intent"]]
            charged[(about.get("kind", "?"), about.get("hold_id") or about.get("appointment_id")
                     or about.get("purchase_id") or charge["payment_intent"])] += 1
    refunds = Counter((refund.get("metadata") or {}).get("refund_key", refund["id"])
                      for refund in _stripe_list(run, "refunds") if refund.get("status") == "succeeded")
    kinds = Counter(kind for kind, _ in charged)
    return [Figure("most successful charges for one business operation", max(charged.values(), default=1), 1,
                   ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) + " operations charged"),
            Figure("most refunds for one refund operation", max(refunds.values(), default=1), 1,
                   f"{sum(refunds.values())} refunds")]


def package_credits_miscounted(stores: Stores, journal: Journal, run: Any) -> Figure:
    """Each package slot is used by one invoice or closed, never both: the visits a package counts as used are
    the invoices in its slots, and no invoice draws on two slots."""
    wrong, used = 0, Counter()
    for package in stores.billing.packages.find({}, {"slots": 1, "visits_used": 1}):
        invoices = [slot for slot in package["slots"] if slot not in (None, packages.EXPIRED, packages.DECLINED)]
        used.update(invoices)
        wrong += package["visits_used"] != len(invoices)
    twice = sum(1 for count in used.values() if count > 1)
    return Figure("packages whose visits used differ from their slots, or invoices on two slots", wrong + twice, 0,
                  f"{len(journal.accepted.get('package', []))} packages bought; {len(used)} visits drawn on them")


def declined_packages_not_refunded(stores: Stores, journal: Journal, run: Any) -> Figure:
    """A declined patient's package: every unused visit closed, and refunded (less the retention) exactly."""
    declined = {p["_id"] for p in stores.intake.patients.find({"outcome": "declined"}, {"_id": 1})}
    entries = list(stores.billing.journal.find({"kind": {"$in": ["refund", "package_retained"]},
                                                "purchase_id": {"$ne": None}}, {"outbox": 0}))
    wrong, checked = [], 0
    for package in stores.billing.packages.find({"patient_id": {"$in": list(declined)}}):
        checked += 1
        closed = packages.value_marked(package, packages.DECLINED)
        returned = ledger.total(entries, "package_credits", purchase_id=package["_id"])
        if None in package["slots"] or returned != closed:
            wrong.append(package["_id"])
    return Figure("declined patients' packages not refunded exactly (less the retention)", len(wrong), 0,
                  f"{checked} packages of declined patients")


def ledger_vs_stripe(stores: Stores, journal: Journal, run: Any) -> Figure:
    """``infusion reconcile`` over the whole run: the ledger's charges and refunds against Stripe's balance
    transactions (missing on either side, amount, fee)."""
    movements = exports.ledger_movements(stores.billing.journal.find(
        {"kind": {"$in": list(exports.STRIPE_KINDS)}}, {"outbox": 0}))
    transactions = Payments(run.platform.env["STRIPE_API_KEY"], run.stripe_base).balance_transactions(0, 2**31)
    differences = exports.reconcile(movements, transactions)
    problems = Counter(difference["problem"] for difference in differences)
    return Figure("differences between the ledger and Stripe's balance transactions", len(differences), 0,
                  f"{len(transactions)} balance transactions" + (f"; {dict(problems)}" if problems else ""))


INVARIANTS: list[Callable[[Stores, Journal, Any], Figure | list[Figure]]] = [
    accepted_registrations_lost, accepted_bookings_lost, appointments_per_booking_key, overlapping_visits,
    invoices_per_appointment, messages_per_event_channel_recipient, events_left_in_outboxes, dead_letters_vs_poison,
    bookings_of_patients_not_eligible_then, future_infusions_left_after_consent_revoked,
    risk_answers_decided_by_a_program,
    messages_not_delivered, messages_received_vs_sent, reminders_not_fired,
    paid_holds_neither_booked_nor_refunded, visit_steps_recorded_twice, given_visits_not_charged,
    ledger_not_balancing, charges_per_business_operation, ledger_vs_stripe, package_credits_miscounted,
    declined_packages_not_refunded, series_outside_their_rules,
]
