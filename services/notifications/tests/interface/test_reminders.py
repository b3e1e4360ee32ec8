"""Reminders are stored when a visit is booked and fired by a timer: they survive a restart, fire once however
many notification processes run (an atomic claim in the store), follow a rescheduled visit, vanish with a
cancelled one, and one whose moment passed by more than its tolerance is skipped and recorded, not sent late.
After discharge the safety message goes at once, whatever the patient's switches say, but never as a text to a
number that sent STOP."""

import time
from datetime import UTC, datetime, timedelta

from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from chassis.clock import as_utc
from chassis.testing import wait_for
from services.notifications.tests.interface.conftest import DAYTIME, booked, event, registered, zone_at_local_hour


def known(notifications, publish) -> None:
    with entrypoint_waiter(notifications, "remember_contact"):
        publish(registered(time_zone=DAYTIME))


def visit_reminded_in(seconds: float) -> datetime:
    """A visit whose day-before reminder falls ``seconds`` from now."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(hours=24, seconds=seconds)


def reminders(db, **query) -> dict[str, dict]:
    return {r["kind"]: r for r in db.reminders.find(query)}


def day_before_texts(sms_provider) -> list[dict]:
    return [t for t in sms_provider.texts() if t["body"].startswith("Reminder: your home visit")]


def test_two_processes_send_each_reminder_once(start_notifications, publish, db, sms_provider, mail_server):
    first, _second = start_notifications(), start_notifications()  # two processes of notifications
    known(first, publish)
    publish(booked(visit_reminded_in(1), time_zone=DAYTIME))

    wait_for(lambda: db.messages.count_documents({"kind": "reminder.day_before", "status": "sent"}) == 2)
    assert [r["status"] for r in db.reminders.find({"kind": "reminder.day_before"})] == ["sent"]
    assert len(day_before_texts(sms_provider)) == 1
    assert len([m for m in mail_server.received() if m["Subject"] == "Your home visit is tomorrow"]) == 1
    assert reminders(db)["reminder.fasting"]["status"] == "planned"  # its moment has not come


def test_a_reminder_planned_before_a_restart_is_sent_after_it(start_notifications, publish, db, sms_provider):
    before = start_notifications()
    known(before, publish)
    with entrypoint_waiter(before, "confirm_appointment"):
        publish(booked(visit_reminded_in(3), time_zone=DAYTIME))
    before.stop()  # planned, not yet due
    assert reminders(db)["reminder.day_before"]["status"] == "planned"

    start_notifications()  # another process, later

    wait_for(lambda: reminders(db)["reminder.day_before"]["status"] == "sent")
    wait_for(lambda: len(day_before_texts(sms_provider)) == 1)


def test_a_rescheduled_visit_replans_its_reminders_and_a_cancelled_one_drops_them(notifications, publish, db):
    known(notifications, publish)
    first = datetime(2026, 12, 10, 18, 0, tzinfo=UTC)
    moved = first + timedelta(days=2)
    with entrypoint_waiter(notifications, "confirm_appointment"):
        publish(booked(first))
    with entrypoint_waiter(notifications, "confirm_new_time"):
        publish(event("scheduling", "appointment.rescheduled", {
            "appointment_id": "apt_1", "patient_id": "pat_ana", "nurse_id": "nur_kim", "visit_type": "iv-mood",
            "start_at": moved, "end_at": moved + timedelta(hours=2), "time_zone": "America/Denver",
            "previous_start_at": first}))

    assert {(r["kind"], r["start_at"], r["status"]) for r in db.reminders.find()} == {
        ("reminder.day_before", first, "dropped"), ("reminder.fasting", first, "dropped"),
        ("reminder.day_before", moved, "planned"), ("reminder.fasting", moved, "planned")}
    assert reminders(db, status="planned")["reminder.day_before"]["due_at"] == moved - timedelta(hours=24)

    with entrypoint_waiter(notifications, "confirm_cancellation"):
        publish(event("scheduling", "appointment.cancelled", {
            "appointment_id": "apt_1", "patient_id": "pat_ana", "visit_type": "iv-mood", "start_at": moved,
            "time_zone": "America/Denver", "by": "patient", "notice_hours": 48, "reason": "travel"}))
    assert {r["status"] for r in db.reminders.find()} == {"dropped"}


def test_a_cancellation_that_overtakes_its_booking_leaves_no_reminder(notifications, publish, db):
    known(notifications, publish)
    start = datetime(2026, 12, 10, 18, 0, tzinfo=UTC)
    with entrypoint_waiter(notifications, "confirm_cancellation"):
        publish(event("scheduling", "appointment.cancelled", {
            "appointment_id": "apt_1", "patient_id": "pat_ana", "visit_type": "iv-mood", "start_at": start,
            "time_zone": "America/Denver", "by": "patient", "notice_hours": 48, "reason": "travel"}))
    with entrypoint_waiter(notifications, "confirm_appointment"):
        publish(booked(start))
    assert db.reminders.count_documents({}) == 0


def test_an_older_move_arriving_after_a_newer_one_changes_nothing(notifications, publish, db):
    known(notifications, publish)
    first = datetime(2026, 12, 10, 18, 0, tzinfo=UTC)
    second, third = first + timedelta(days=1), first + timedelta(days=2)

    def moved(previous, start):
        return event("scheduling", "appointment.rescheduled", {
            "appointment_id": "apt_1", "patient_id": "pat_ana", "nurse_id": "nur_kim", "visit_type": "iv-mood",
            "start_at": start, "end_at": start + timedelta(hours=2), "time_zone": "America/Denver",
            "previous_start_at": previous})

    with entrypoint_waiter(notifications, "confirm_new_time"):
        publish(moved(second, third))
    with entrypoint_waiter(notifications, "confirm_new_time"):
        publish(moved(first, second))  # older, arrives late
    with entrypoint_waiter(notifications, "confirm_appointment"):
        publish(booked(first))  # the oldest, last

    assert {r["start_at"] for r in db.reminders.find({"status": "planned"})} == {third}


def test_a_reminder_whose_moment_passed_beyond_its_tolerance_is_skipped_and_recorded(notifications, publish, db):
    known(notifications, publish)
    publish(booked(visit_reminded_in(-7 * 3600), time_zone=DAYTIME))  # due 7 h ago; tolerance 6 h

    skipped = wait_for(lambda: reminders(db, status="skipped").get("reminder.day_before"))
    assert "past its tolerance" in skipped["outcome"]
    assert db.messages.count_documents({"kind": "reminder.day_before"}) == 0


def test_a_reminder_fired_within_its_tolerance_but_not_sent_by_its_end_is_skipped_and_recorded(
        start_notifications, publish, db, sms_provider, mail_server):
    evening = zone_at_local_hour(22)  # the patient's quiet hours: a reminder is not held until the morning
    silent = start_notifications(SMTP_HOST="", SMS_API_BASE="")  # a process that can send on no channel
    with entrypoint_waiter(silent, "remember_contact"):
        publish(registered(time_zone=evening))
    fired_at = datetime.now(UTC)
    publish(booked(visit_reminded_in(-6 * 3600 + 4), time_zone=evening))  # due 6 h less 4 s ago; tolerance 6 h

    wait_for(lambda: reminders(db, status="sent").get("reminder.day_before"))
    recorded = list(db.messages.find({"kind": "reminder.day_before"}))
    assert {m["channel"] for m in recorded} == {"email", "sms"} and {m["status"] for m in recorded} == {"pending"}
    assert all(as_utc(m["not_before"]) < fired_at + timedelta(minutes=1) for m in recorded)  # not at 08:00
    expires_at = as_utc(recorded[0]["expires_at"])
    assert expires_at < fired_at + timedelta(seconds=5)  # its moment plus its tolerance
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.2)
    silent.stop()

    start_notifications()  # a process that can send, after the reminder's tolerance ran out

    wait_for(lambda: {m["status"] for m in db.messages.find({"kind": "reminder.day_before"})} == {"skipped"})
    for message in db.messages.find({"kind": "reminder.day_before"}):
        assert "no longer of use: it expired" in message["last_error"] and message["sent_at"] is None
    assert day_before_texts(sms_provider) == []
    assert not [m for m in mail_server.received() if m["Subject"] == "Your home visit is tomorrow"]


def test_after_discharge_the_safety_message_goes_at_once_by_email_only_to_a_number_that_sent_stop(
        notifications, publish, db, sms_provider):
    known(notifications, publish)
    with entrypoint_hook(notifications, "sms_received") as sms_received:
        assert sms_received("+13035550100", " Stop ")["action"] == "stopped"
    with entrypoint_hook(notifications, "set_preferences") as set_preferences:
        set_preferences("pat_ana", {"email": {"reminders": False, "check_in": False}})
    now = datetime.now(UTC)
    publish(event("scheduling", "visit.discharged", {
        "appointment_id": "apt_1", "patient_id": "pat_ana", "visit_type": "iv-mood", "time_zone": DAYTIME,
        "discharged_at": now}))

    [safety] = wait_for(lambda: list(db.messages.find({"kind": "reminder.after_care", "status": "sent"})))
    assert safety["channel"] == "email" and "do not drive" in safety["body"]
    assert reminders(db)["reminder.check_in"]["status"] == "planned"
    assert reminders(db)["reminder.check_in"]["due_at"] > now + timedelta(hours=12)
    assert sms_provider.texts() == []

    with entrypoint_hook(notifications, "sms_received") as sms_received:
        assert sms_received("+13035550100", "START")["action"] == "started"
        assert "911" in sms_received("+13035550100", "help")["reply"]
