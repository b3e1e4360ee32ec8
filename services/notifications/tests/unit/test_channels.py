"""What leaves on each channel: an email a mail client shows well (plain text and HTML alternatives, the visit as
a calendar file calendar apps accept), and the settings that say whether a channel is there at all."""

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from services.notifications.channels import SmsSettings, SmtpMailer, SmtpSettings, visit_calendar

START = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)


def test_the_visit_calendar_file_has_what_calendar_apps_require_and_no_health_word():
    text = visit_calendar("apt_1", START, START + timedelta(hours=2), sequence=3, organizer_name="Home Care Visits",
                          domain="visits.example.com")
    calendar = Calendar.from_ical(text)
    assert (str(calendar["version"]), str(calendar["method"])) == ("2.0", "PUBLISH") and calendar["prodid"]
    [visit] = calendar.walk("VEVENT")
    assert str(visit["uid"]) == "apt_1@visits.example.com" and visit["sequence"] == 3 and visit.get("dtstamp")
    assert (visit.decoded("dtstart"), visit.decoded("dtend")) == (START, START + timedelta(hours=2))
    assert str(visit["summary"]) == "Home visit (Home Care Visits)"
    assert "\r\n" in text  # lines end as RFC 5545 says


def test_an_email_has_plain_text_and_html_alternatives_and_the_calendar_attached():
    mailer = SmtpMailer(SmtpSettings("mail.example.com", sender="Clinic <visits@example.com>"))
    message = mailer.compose({"_id": "msg_1", "to": "ana@example.com", "subject": "Your appointment is confirmed",
                              "body": "Hello Ana", "html": "<p>Hello Ana</p>", "calendar": "BEGIN:VCALENDAR\r\n"})
    assert message.get_content_type() == "multipart/mixed"
    assert message.get_body(preferencelist=("plain",)).get_content().strip() == "Hello Ana"
    assert message.get_body(preferencelist=("html",)).get_content().strip() == "<p>Hello Ana</p>"
    [attachment] = message.iter_attachments()
    assert (attachment.get_content_type(), attachment.get_filename(), attachment.get_param("method")) == (
        "text/calendar", "visit.ics", "PUBLISH")
    assert message["Message-ID"] == "<msg_1@example.com>"  # the same for a resend of the same record


def test_an_email_without_calendar_is_just_the_two_alternatives():
    message = SmtpMailer(SmtpSettings("mail.example.com")).compose(
        {"_id": "msg_2", "to": "ana@example.com", "subject": "Your receipt", "body": "Thanks", "html": "<p>Thanks</p>"})
    assert message.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize(("config", "channel"), [
    ({}, None),
    ({"SMTP_HOST": ""}, None),
    ({"SMTP_HOST": "smtp.example.com"}, SmtpSettings("smtp.example.com")),
    ({"SMTP_HOST": "smtp.example.com", "SMTP_PORT": 465, "SMTP_SECURITY": "TLS", "SMTP_USERNAME": "u",
      "SMTP_PASSWORD": "p"}, SmtpSettings("smtp.example.com", 465, "tls", "u", "p")),
])
def test_email_is_a_channel_only_with_a_mail_server(config, channel):
    assert SmtpSettings.from_config(config) == channel


def test_an_unknown_smtp_security_is_refused_at_start_up():
    with pytest.raises(ValueError, match="SMTP_SECURITY"):
        SmtpSettings.from_config({"SMTP_HOST": "smtp.example.com", "SMTP_SECURITY": "ssl3"})


def test_sms_is_a_channel_only_with_a_provider_address():
    assert SmsSettings.from_config({"SMS_API_BASE": ""}) is None
    settings = SmsSettings.from_config({"SMS_API_BASE": "https://api.twilio.com/", "SMS_ACCOUNT_SID": "AC1",
                                        "SMS_AUTH_TOKEN": "t", "SMS_FROM": "+13035550000"})
    assert (settings.api_base, settings.account_sid, settings.sender) == ("https://api.twilio.com", "AC1",
                                                                          "+13035550000")
