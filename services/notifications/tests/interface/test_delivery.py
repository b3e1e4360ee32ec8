"""Messages really leave: email over SMTP (a real server on loopback reads what arrived: headers, the plain-text
and HTML parts, the visit's calendar file), texts through the provider's API (its double, told to fail and then
recover). A channel that fails is retried with backoff; a final failure is recorded with its reason and holds
up nothing else; quiet hours hold what can wait until the patient's morning."""

import argparse
import json
from datetime import UTC, datetime, timedelta

from icalendar import Calendar
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from chassis.testing import wait_for
from services.notifications.commands import register
from services.notifications.tests.interface.conftest import DAYTIME, NIGHT, booked, event, registered

VISIT_START = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)  # 10:00 in Denver


def sent(db, **query) -> list[dict]:
    return list(db.messages.find({"status": "sent", **query}))


def known(notifications, publish, registration: dict) -> None:
    with entrypoint_waiter(notifications, "remember_contact"):
        publish(registration)


def test_a_booking_confirmation_arrives_by_email_with_both_parts_and_a_calendar_file(
        notifications, publish, db, mail_server, sms_provider):
    known(notifications, publish, registered(time_zone=DAYTIME))
    booking = booked(VISIT_START)
    publish(booking)

    wait_for(lambda: len(sent(db, kind="appointment.booked")) == 2)
    [mail] = [m for m in mail_server.received() if m["Subject"] == "Your appointment is confirmed"]
    assert (mail["To"], mail["From"]) == ("ana@example.com", "Home Care Visits <visits@example.com>")
    [record] = sent(db, kind="appointment.booked", channel="email")
    assert mail["Message-ID"] == record["provider_message_id"] and record["attempts"] == 1
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Hello Ana" in text and "Thursday, December 3 at 10:00 AM MST" in text
    assert "<p>Hello Ana,</p>" in html and "10:00 AM MST" in html
    [attachment] = list(mail.iter_attachments())
    assert (attachment.get_content_type(), attachment.get_filename()) == ("text/calendar", "visit.ics")
    [visit] = Calendar.from_ical(attachment.get_payload(decode=True)).walk("VEVENT")
    assert visit.decoded("dtstart") == VISIT_START and visit.decoded("dtend") == VISIT_START + timedelta(hours=2)
    assert str(visit["uid"]).startswith("apt_1@") and "ketamine" not in str(visit["summary"]).lower()

    [text_message] = [t for t in sms_provider.texts() if "confirmed" in t["body"]]
    assert (text_message["to"], text_message["from"]) == ("+13035550100", "+13035550000")
    assert sent(db, kind="appointment.booked", channel="sms")[0]["provider_message_id"] == text_message["sid"]


def test_a_rescheduled_visit_sends_the_same_calendar_event_with_a_higher_sequence(
        notifications, publish, db, mail_server):
    known(notifications, publish, registered(time_zone=DAYTIME))
    publish(booked(VISIT_START))
    wait_for(lambda: sent(db, kind="appointment.booked", channel="email"))
    moved = VISIT_START + timedelta(days=1)
    publish(event("scheduling", "appointment.rescheduled", {
        "appointment_id": "apt_1", "patient_id": "pat_ana", "nurse_id": "nur_kim", "visit_type": "iv-mood",
        "start_at": moved, "end_at": moved + timedelta(hours=2), "time_zone": "America/Denver",
        "previous_start_at": VISIT_START}))

    wait_for(lambda: sent(db, kind="appointment.rescheduled", channel="email"))
    calendars = {}
    for mail in mail_server.received():
        for attachment in mail.iter_attachments():
            [visit] = Calendar.from_ical(attachment.get_payload(decode=True)).walk("VEVENT")
            calendars[mail["Subject"]] = visit
    first, second = calendars["Your appointment is confirmed"], calendars["Your appointment has moved"]
    assert first["uid"] == second["uid"] and second["sequence"] >= first["sequence"]
    assert second.decoded("dtstart") == moved


def test_a_text_the_provider_fails_is_retried_until_it_recovers_and_sent_once(
        notifications, publish, db, sms_provider):
    known(notifications, publish, registered(time_zone=DAYTIME))
    sms_provider.fail_next(2)
    publish(booked(VISIT_START))

    [text] = wait_for(lambda: sent(db, kind="appointment.booked", channel="sms"))
    assert text["attempts"] == 3 and text["last_error"] is None
    assert len([t for t in sms_provider.texts() if "confirmed" in t["body"]]) == 1


def test_a_text_that_keeps_failing_is_recorded_as_failed_and_holds_up_nothing_else(
        notifications, publish, db, sms_provider, mail_server):
    known(notifications, publish, registered(time_zone=DAYTIME))
    sms_provider.fail_next(100)
    publish(booked(VISIT_START))

    [failed] = wait_for(lambda: list(db.messages.find({"status": "failed"})))
    assert (failed["channel"], failed["attempts"]) == ("sms", 4)  # DELIVERY_MAX_ATTEMPTS
    assert "503" in failed["last_error"]
    assert sent(db, kind="appointment.booked", channel="email")  # the email went meanwhile
    with entrypoint_hook(notifications, "list_messages") as list_messages:
        shown = {m["channel"]: m for m in list_messages("pat_ana")["items"] if m["kind"] == "appointment.booked"}
    assert shown["sms"]["status"] == "failed" and "503" in shown["sms"]["last_error"]


def test_an_address_the_mail_server_refuses_fails_at_once_with_its_reason(notifications, publish, db):
    known(notifications, publish, registered(time_zone=DAYTIME, email_address="nobody@example.com"))

    [failed] = wait_for(lambda: list(db.messages.find({"status": "failed"})))
    assert (failed["kind"], failed["attempts"]) == ("patient.registered", 1)
    assert "550" in failed["last_error"] and "nobody@example.com" in failed["last_error"]


def test_what_can_wait_waits_for_the_patients_morning_but_the_nurse_en_route_goes_at_once(
        notifications, publish, db, sms_provider):
    known(notifications, publish, registered(time_zone=NIGHT))  # it is about 2 am where the patient lives
    now = datetime.now(UTC)
    publish(booked(VISIT_START, time_zone=NIGHT))
    publish(event("scheduling", "visit.en_route", {
        "appointment_id": "apt_1", "patient_id": "pat_ana", "nurse_id": "nur_kim", "time_zone": NIGHT,
        "arrival_from": now + timedelta(minutes=20), "arrival_to": now + timedelta(minutes=50)}))

    wait_for(lambda: len(sent(db, kind="visit.en_route")) == 2)
    waiting = list(db.messages.find({"kind": "appointment.booked"}))
    assert [m["status"] for m in waiting] == ["pending", "pending"]
    assert all(m["not_before"] > now + timedelta(hours=5) for m in waiting)  # 08:00 there
    assert [t["body"] for t in sms_provider.texts() if "on the way" in t["body"]]


def test_an_urgent_review_alerts_the_clinician_and_on_call_never_the_patient(notifications, publish, db,
                                                                             mail_server):
    known(notifications, publish, registered(time_zone=DAYTIME))
    with entrypoint_waiter(notifications, "alert_urgent_review", callback=lambda *args: True):
        publish(event("intake", "review.requested", {"review_id": "rev_2", "patient_id": "pat_ana",
                                                      "urgent": False, "clinician_id": "cln_lee"}))
        publish(event("intake", "review.requested", {"review_id": "rev_1", "patient_id": "pat_ana",
                                                      "urgent": True, "clinician_id": "cln_lee"}))

    alerts = wait_for(lambda: len(sent(db, kind="review.urgent")) == 2 and sent(db, kind="review.urgent"))
    assert sorted(m["to"] for m in alerts) == ["dr.lee@clinic.example.com", "on-call@clinic.example.com"]
    assert {m["patient_id"] for m in alerts} == {None} and "rev_1" in alerts[0]["body"]
    assert not [m for m in mail_server.received() if m["To"] == "ana@example.com" and "review" in m["Subject"]]


def test_an_urgent_review_with_no_staff_address_is_logged_and_recorded_failed_never_lost(
        start_notifications, publish, db, mail_server, caplog):
    notifications = start_notifications(ON_CALL_EMAIL="", CLINICIAN_EMAILS={})
    with entrypoint_waiter(notifications, "alert_urgent_review"):
        publish(event("intake", "review.requested", {"review_id": "rev_1", "patient_id": "pat_ana",
                                                      "urgent": True, "clinician_id": "cln_lee"}))

    [alert] = list(db.messages.find({"kind": "review.urgent"}))
    assert (alert["status"], alert["to"], alert["about"]) == ("failed", None, "pat_ana")
    assert "ON_CALL_EMAIL" in alert["last_error"] and "rev_1" in alert["body"]
    assert [r for r in caplog.records if r.levelname == "ERROR" and "rev_1" in r.getMessage()]
    assert mail_server.received() == []


def test_each_fact_of_the_flows_tells_the_patient(notifications, publish, db):
    known(notifications, publish, registered(time_zone=DAYTIME))
    money = {"patient_id": "pat_ana", "amount_cents": 10000, "currency": "usd"}
    facts = [
        event("intake", "screening.submitted", {"patient_id": "pat_ana", "screening_id": "scr_1",
                                                "instrument": "phq9", "submitted_at": VISIT_START}),
        event("intake", "patient.cleared", {"patient_id": "pat_ana", "review_id": "rev_1", "protocol_code": "p1",
                                            "planned_sessions": 6}),
        event("intake", "patient.declined", {"patient_id": "pat_ana", "review_id": None, "reason_code": "age"}),
        event("scheduling", "hold.placed", {
            "hold_id": "hld_1", "patient_id": "pat_ana", "nurse_id": "nur_kim", "visit_type": "iv-mood",
            "start_at": VISIT_START, "end_at": VISIT_START + timedelta(hours=2), "time_zone": DAYTIME,
            "expires_at": datetime.now(UTC) + timedelta(minutes=10), "quote_id": "quo_1", "deposit_cents": 10000,
            "currency": "usd"}),
        event("billing", "deposit.paid", {**money, "hold_id": "hld_1", "payment_intent_id": "pi_1"}),
        event("scheduling", "booking.failed", {"hold_id": "hld_1", "patient_id": "pat_ana", "reason": "slot_taken"}),
        event("scheduling", "appointment.cancelled", {
            "appointment_id": "apt_9", "patient_id": "pat_ana", "visit_type": "iv-mood", "start_at": VISIT_START,
            "time_zone": DAYTIME, "by": "clinic", "notice_hours": 72, "reason": "nurse ill"}),
        event("scheduling", "waitlist.offered", {
            "waitlist_id": "wl_1", "patient_id": "pat_ana", "hold_id": "hld_2", "start_at": VISIT_START,
            "time_zone": DAYTIME, "expires_at": datetime.now(UTC) + timedelta(hours=1)}),
        event("billing", "payment.succeeded", {**money, "invoice_id": "inv_1", "appointment_id": "apt_1",
                                               "payment_intent_id": "pi_2", "kind": "balance"}),
        event("billing", "payment.failed", {**money, "invoice_id": "inv_1", "appointment_id": "apt_1",
                                            "reason_code": "card_declined"}),
        event("billing", "refund.issued", {**money, "refund_id": "re_1", "invoice_id": None, "hold_id": "hld_1",
                                           "reason": "booking_failed"}),
        event("billing", "fee.charged", {**money, "fee_id": "fee_1", "appointment_id": "apt_9",
                                         "invoice_id": "inv_9", "reason": "late_cancellation"}),
    ]
    for fact in facts:
        publish(fact)

    expected = {fact["type"] for fact in facts}
    wait_for(lambda: {m["kind"] for m in sent(db)} >= expected, timeout=20)
    for record in sent(db):
        assert record["patient_id"] == "pat_ana"


def test_operators_list_the_messages_that_failed(notifications, publish, db, service_config, monkeypatch, capsys):
    known(notifications, publish, registered(time_zone=DAYTIME, email_address="nobody@example.com"))
    known(notifications, publish, registered("pat_bo", first_name="Bo", time_zone=DAYTIME, sms_opt_in=False))
    wait_for(lambda: db.messages.count_documents({"status": {"$in": ["sent", "failed"]}}) == 2)
    monkeypatch.setenv("MONGO_URI", service_config["MONGO_URI"])
    monkeypatch.setenv("DATABASE_PREFIX", service_config["DATABASE_PREFIX"])
    parser = argparse.ArgumentParser(prog="infusion")
    register(parser.add_subparsers(dest="command", required=True))

    args = parser.parse_args(["messages", "list", "--failed"])
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "patient.registered  email to nobody@example.com  attempts=1" in printed and "550" in printed
    assert "bo@example.com" not in printed

    args = parser.parse_args(["messages", "list", "--json"])
    assert args.run(args) == 0
    assert {m["status"] for m in json.loads(capsys.readouterr().out)} == {"sent", "failed"}


def test_a_message_a_value_would_fill_with_a_health_word_is_recorded_as_refused_and_never_sent(
        notifications, publish, db, mail_server):
    known(notifications, publish, registered(first_name="Ketamine", time_zone=DAYTIME))  # "Welcome, Ketamine"

    [refused] = list(db.messages.find({"kind": "patient.registered"}))
    assert refused["status"] == "failed" and "ketamine" in refused["last_error"] and refused["subject"] is None
    publish(booked(VISIT_START))
    wait_for(lambda: sent(db, kind="appointment.booked", channel="email"))  # nothing else held up
    assert [m["Subject"] for m in mail_server.received()] == ["Your appointment is confirmed"]


def test_a_number_the_provider_refuses_fails_at_once_with_its_reason(notifications, publish, db):
    known(notifications, publish, registered(time_zone=DAYTIME, phone="303-555-0100"))
    publish(booked(VISIT_START))

    [failed] = wait_for(lambda: list(db.messages.find({"status": "failed"})))
    assert (failed["channel"], failed["attempts"]) == ("sms", 1)
    assert "400" in failed["last_error"] and "not a valid phone number" in failed["last_error"]
