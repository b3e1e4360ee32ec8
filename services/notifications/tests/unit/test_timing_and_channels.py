"""When a message goes and on which channels: quiet hours in the patient's own time zone (DST included),
reminders before and after a visit, retries that back off, preferences, consent to texts and STOP."""

from datetime import datetime, timedelta

import pytest
import yaml

from chassis.config import ConfigurationInvalid, VersionedConfig
from services.notifications.dependencies import CONFIG_DIR, load_message_catalogue
from services.notifications.domain import (
    MessageCatalogueSchema,
    RetryPolicy,
    Timing,
    after_quiet_hours,
    carries_calendar,
    expired,
    in_quiet_hours,
    message_timing,
    patient_channels,
    plan_after_care,
    plan_visit_reminders,
    preference_errors,
    reminder_timing,
    send_at,
    too_late,
)

CATALOGUE = load_message_catalogue().effective_at()  # quiet hours 21:00-08:00 local


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(("moment", "time_zone", "quiet"), [
    ("2026-11-26T03:59:00Z", "America/New_York", True),    # 22:59 EST
    ("2026-11-26T13:00:00Z", "America/New_York", False),   # 08:00 EST: the quiet ends
    ("2026-11-26T12:59:00Z", "America/New_York", True),    # 07:59 EST
    ("2026-11-26T02:00:00Z", "America/Denver", False),     # 19:00 MST
    ("2026-11-26T04:00:00Z", "America/Denver", True),      # 21:00 MST: the quiet begins
    ("2026-07-14T12:30:00Z", "America/New_York", False),   # 08:30 EDT (the same instant is 07:30 in winter)
    ("2026-07-14T12:30:00Z", "America/Phoenix", True),     # 05:30 MST: Arizona keeps no DST
])
def test_quiet_hours_are_the_patients_own(moment, time_zone, quiet):
    assert in_quiet_hours(CATALOGUE, at(moment), time_zone) is quiet


@pytest.mark.parametrize(("moment", "time_zone", "sent"), [
    ("2026-11-26T03:59:00Z", "America/New_York", "2026-11-26T13:00:00+00:00"),  # 22:59 -> 08:00 next morning
    ("2026-11-26T10:00:00Z", "America/New_York", "2026-11-26T13:00:00+00:00"),  # 05:00 -> 08:00 the same day
    ("2026-11-26T15:00:00Z", "America/New_York", "2026-11-26T15:00:00+00:00"),  # 10:00: at once
    # the nights the clocks change: 08:00 local is another UTC hour on either side
    ("2026-11-01T03:30:00Z", "America/New_York", "2026-11-01T13:00:00+00:00"),  # 23:30 EDT -> 08:00 EST
    ("2027-03-14T04:30:00Z", "America/New_York", "2027-03-14T12:00:00+00:00"),  # 23:30 EST -> 08:00 EDT
])
def test_a_message_that_can_wait_waits_for_the_morning(moment, time_zone, sent):
    assert after_quiet_hours(CATALOGUE, at(moment), time_zone) == at(sent)
    assert send_at(CATALOGUE, "appointment.booked", at(moment), time_zone) == at(sent)


def test_an_urgent_message_ignores_quiet_hours():
    night = at("2026-11-26T05:00:00Z")
    assert send_at(CATALOGUE, "reminder.after_care", night, "America/New_York") == night
    assert send_at(CATALOGUE, "review.urgent", night, "America/New_York") == night


def reminders(start: str, time_zone: str, visit_type: str = "iv-mood") -> dict[str, datetime]:
    return {r.kind: r.due_at for r in plan_visit_reminders(CATALOGUE, at(start), visit_type, time_zone)}


@pytest.mark.parametrize(("start", "time_zone", "day_before", "fasting"), [
    # 14:00 MST visit: reminded 24 h before, fasting from 08:00 (6 h)
    ("2026-11-26T21:00:00Z", "America/Denver", "2026-11-25T21:00:00+00:00", "2026-11-26T15:00:00+00:00"),
    # 10:00 EST visit: fasting from 04:00 is in the quiet hours, so the evening before at 20:59
    ("2026-11-26T15:00:00Z", "America/New_York", "2026-11-25T15:00:00+00:00", "2026-11-26T01:59:00+00:00"),
    # 10:00 PST visit
    ("2026-11-26T18:00:00Z", "America/Los_Angeles", "2026-11-25T18:00:00+00:00", "2026-11-26T04:59:00+00:00"),
    # a visit the day after the clocks go back (Sun 1 Nov): 24 h before is 09:00 EDT the day before
    ("2026-11-02T15:00:00Z", "America/New_York", "2026-11-01T15:00:00+00:00", "2026-11-02T01:59:00+00:00"),
    # the day after the clocks go forward (Sun 14 Mar 2027): the evening before is 20:59 EDT
    ("2027-03-15T14:00:00Z", "America/New_York", "2027-03-14T14:00:00+00:00", "2027-03-15T00:59:00+00:00"),
    # the clocks go back the night before a 10:00 visit: 20:59 on Saturday was still EDT
    ("2026-11-01T15:00:00Z", "America/New_York", "2026-10-31T15:00:00+00:00", "2026-11-01T00:59:00+00:00"),
])
def test_visit_reminders_come_the_day_before_and_before_fasting_never_at_night(start, time_zone, day_before,
                                                                                fasting):
    planned = reminders(start, time_zone)
    assert planned == {"reminder.day_before": at(day_before), "reminder.fasting": at(fasting)}
    for due in planned.values():
        assert not in_quiet_hours(CATALOGUE, due, time_zone)


def test_a_visit_type_without_fasting_has_no_fasting_reminder():
    assert set(reminders("2026-11-26T21:00:00Z", "America/Denver", "consult")) == {"reminder.day_before"}


def test_an_unknown_visit_type_fasts_by_the_default_rule():
    assert "reminder.fasting" in reminders("2026-11-26T21:00:00Z", "America/Denver", "iv-new")


@pytest.mark.parametrize(("discharged", "time_zone", "check_in"), [
    ("2026-11-26T20:00:00Z", "America/Denver", "2026-11-27T17:00:00+00:00"),     # 10:00 MST next day
    ("2026-10-31T18:00:00Z", "America/New_York", "2026-11-01T15:00:00+00:00"),   # next day is EST
    ("2027-03-13T18:00:00Z", "America/New_York", "2027-03-14T14:00:00+00:00"),   # next day is EDT
    ("2026-11-27T03:00:00Z", "America/Los_Angeles", "2026-11-27T18:00:00+00:00"),  # 19:00 on the 26th there
])
def test_after_discharge_the_safety_message_goes_at_once_and_the_check_in_the_next_local_morning(
        discharged, time_zone, check_in):
    planned = {r.kind: r.due_at for r in plan_after_care(CATALOGUE, at(discharged), time_zone)}
    assert planned == {"reminder.after_care": at(discharged), "reminder.check_in": at(check_in)}


@pytest.mark.parametrize(("late_by", "skipped"), [(timedelta(0), False), (timedelta(minutes=59), False),
                                                  (timedelta(minutes=61), True), (timedelta(days=1), True)])
def test_a_reminder_past_its_tolerance_is_skipped_not_sent_late(late_by, skipped):
    due = at("2026-11-26T15:00:00Z")
    assert too_late(due, timedelta(hours=1), due + late_by) is skipped


# A fasting reminder planned for 20:59 MST (the evening before a 10:00 visit, fasting from 04:00), tolerance 1 h.
FASTING_DUE = at("2026-11-26T03:59:00Z")


@pytest.mark.parametrize(("fired", "expires"), [
    ("2026-11-26T03:59:00Z", "2026-11-26T04:59:00Z"),  # on time, 20:59 MST
    ("2026-11-26T04:09:00Z", "2026-11-26T04:59:00Z"),  # 21:09 MST, in quiet hours: still at once, not at 08:00
    ("2026-11-26T04:58:00Z", "2026-11-26T04:59:00Z"),  # a minute inside its tolerance
])
def test_a_fired_reminder_goes_at_once_and_expires_at_its_moment_plus_its_tolerance(fired, expires):
    timing = reminder_timing(FASTING_DUE, timedelta(hours=1), at(fired))
    assert timing == Timing(not_before=at(fired), expires_at=at(expires))
    assert timing.not_before < at("2026-11-26T15:00:00Z")  # never held until the morning, after the fast began


def test_a_late_reminder_is_held_by_nothing_but_expires_within_its_tolerance():
    fired = at("2026-11-26T04:09:00Z")  # 21:09 MST
    assert in_quiet_hours(CATALOGUE, fired, "America/Denver")
    timing = reminder_timing(FASTING_DUE, timedelta(hours=1), fired)
    assert not expired(timing.expires_at, at("2026-11-26T04:59:00Z"))  # its last moment: still sent
    assert expired(timing.expires_at, at("2026-11-26T04:59:01Z"))  # past it: skipped, recorded, never sent
    assert expired(timing.expires_at, at("2026-11-26T15:00:00Z"))  # what quiet hours used to hold it until


@pytest.mark.parametrize(("expires_at", "now", "is_expired"), [
    (None, "2030-01-01T00:00:00Z", False),  # a message with no expiry never expires
    ("2026-11-26T15:00:00Z", "2026-11-26T14:59:59Z", False),
    ("2026-11-26T15:00:00Z", "2026-11-26T15:00:00Z", False),
    ("2026-11-26T15:00:00Z", "2026-11-26T15:00:01Z", True),
])
def test_a_message_past_its_expiry_is_no_longer_of_use(expires_at, now, is_expired):
    assert expired(expires_at and at(expires_at), at(now)) is is_expired


def test_a_message_an_event_causes_waits_for_the_morning_and_keeps_the_events_expiry():
    night, morning = at("2026-11-26T05:00:00Z"), at("2026-11-26T15:00:00Z")  # 22:00 and 08:00 MST
    arrival = night + timedelta(minutes=30)
    assert message_timing(CATALOGUE, "appointment.booked", night, "America/Denver") == Timing(morning)
    assert message_timing(CATALOGUE, "appointment.booked", night, "America/Denver", quiet_hours=False) \
        == Timing(night)
    assert message_timing(CATALOGUE, "visit.en_route", night, "America/Denver", expires_at=arrival) \
        == Timing(night, arrival)


def catalogue_with(change) -> VersionedConfig:
    document = yaml.safe_load((CONFIG_DIR / "messages.yml").read_text())
    change(document["versions"][0]["kinds"])
    return VersionedConfig.from_document("messages.yml", document, MessageCatalogueSchema())


def test_the_calendar_file_goes_with_the_kinds_the_catalogue_marks():
    assert {kind for kind in CATALOGUE["kinds"] if carries_calendar(CATALOGUE, kind)} == {
        "appointment.booked", "appointment.rescheduled"}
    without = catalogue_with(lambda kinds: kinds["appointment.rescheduled"].update(calendar=False)).effective_at()
    assert not carries_calendar(without, "appointment.rescheduled")
    assert carries_calendar(without, "appointment.booked")


def test_a_calendar_on_a_kind_whose_event_carries_no_visit_time_is_refused_at_start_up():
    with pytest.raises(ConfigurationInvalid, match="appointment.cancelled"):
        catalogue_with(lambda kinds: kinds["appointment.cancelled"].update(calendar=True))


def test_a_failed_send_is_retried_with_doubling_waits_then_given_up():
    policy = RetryPolicy(max_attempts=5, first_retry_seconds=30, longest_retry_seconds=100)
    assert [policy.delay(n) for n in range(1, 6)] == [timedelta(seconds=s) for s in (30, 60, 100, 100)] + [None]


def contact(**changes) -> dict:
    return {"_id": "pat_ana", "first_name": "Ana", "email": "ana@example.com", "phone": "+13035550100",
            "time_zone": "America/Denver", "sms_opt_in": True, **changes}


@pytest.mark.parametrize(("kind", "changes", "channels"), [
    ("appointment.booked", {}, ["email", "sms"]),
    ("appointment.booked", {"sms_opt_in": False}, ["email"]),          # no consent to texts
    ("appointment.booked", {"sms_stopped": True}, ["email"]),          # STOP
    ("reminder.day_before", {"preferences": {"sms": {"reminders": False}}}, ["email"]),
    ("reminder.day_before", {"preferences": {"email": {"reminders": False}, "sms": {"reminders": False}}}, []),
    ("reminder.day_before", {"preferences": {"sms": {"billing": False}}}, ["email", "sms"]),  # another category
    ("reminder.day_before", {"preferences": {"sms": {"reminder.day_before": False}}}, ["email"]),  # this kind
    ("reminder.fasting", {"preferences": {"sms": {"reminder.day_before": False}}}, ["email", "sms"]),  # another
    ("invoice.created", {}, ["email"]),                                # no SMS template for invoices
    # safety: whatever the switches say; but never a text to a number that sent STOP: email instead
    ("reminder.after_care", {"preferences": {"sms": {"reminders": False}, "email": {"check_in": False}}},
     ["sms", "email"]),
    ("reminder.after_care", {"sms_stopped": True}, ["email"]),
    ("reminder.after_care", {"sms_opt_in": False}, ["email"]),
])
def test_channels_follow_consent_stop_and_preferences_except_for_safety(kind, changes, channels):
    chosen = patient_channels(CATALOGUE, kind, contact(**changes))
    assert [channel for channel, _ in chosen] == channels
    assert all(to == ("+13035550100" if channel == "sms" else "ana@example.com") for channel, to in chosen)


@pytest.mark.parametrize(("preferences", "errors"), [
    ({"sms": {"reminders": False}, "email": {"billing": True}}, {}),
    ({"fax": {"reminders": False}}, {"fax": ["Unknown channel; use one of ['email', 'sms']."]}),
    ({"sms": {"reminder.fasting": False, "offers": False}}, {}),
    ({"sms": {"birthdays": False}},
     {"sms.birthdays": [f"Unknown category or message kind; categories: {CATALOGUE['categories']}."]}),
    ({"sms": {"review.urgent": False}},  # a staff message is no patient's to switch
     {"sms.review.urgent": [f"Unknown category or message kind; categories: {CATALOGUE['categories']}."]}),
    ({"sms": {"safety": False}}, {"sms.safety": ["Safety messages cannot be switched off."]}),
    ({"email": {"reminder.after_care": False}},
     {"email.reminder.after_care": ["Safety messages cannot be switched off."]}),
    ({"sms": {"reminders": "no"}}, {"sms.reminders": ["Must be true or false."]}),
    ({"sms": ["reminders"]}, {"sms": ["Must be an object of category: true or false."]}),
])
def test_unknown_or_invalid_preferences_are_named(preferences, errors):
    assert preference_errors(CATALOGUE, preferences) == errors
