"""Every message the platform can send, rendered from its template files with sample values: none carries a
health word in a text or a subject line (a lock screen or a shared inbox must not tell anyone what the visit
is for), values are escaped in HTML, a catalogue whose templates break the rule never starts, and a failed booking
says the time was taken only when it was."""

import shutil
from pathlib import Path

import pytest
import yaml

from services.notifications.dependencies import CONFIG_DIR, load_message_catalogue
from services.notifications.domain import message_values, sample_values
from services.notifications.rendering import TEMPLATES_DIR, TemplateRefused, Templates, assert_no_health_words

CATALOGUE_CONFIG = load_message_catalogue()
CATALOGUE = CATALOGUE_CONFIG.effective_at()
TEMPLATES = Templates()
SAMPLES = sample_values(CATALOGUE)
FORBIDDEN = CATALOGUE["forbidden_words"]
EVERY_MESSAGE = [(kind, channel, locale) for kind, settings in sorted(CATALOGUE["kinds"].items())
                 for channel in settings["channels"] for locale in TEMPLATES.locales]


@pytest.mark.parametrize(("kind", "channel", "locale"), EVERY_MESSAGE)
def test_no_rendered_text_or_subject_carries_a_health_word(kind, channel, locale):
    content = TEMPLATES.render(CATALOGUE, kind, channel, locale, SAMPLES[kind])
    assert content.text.strip()
    assert_no_health_words(content.text if channel == "sms" else content.subject, FORBIDDEN)
    if channel == "email":
        assert content.subject and content.html.startswith("<!doctype html>")
        assert "{{" not in content.text + content.html  # every placeholder was filled


def test_every_kind_the_service_sends_has_a_configuration_and_templates():
    assert set(CATALOGUE["kinds"]) == set(SAMPLES)


def test_values_are_escaped_in_html_but_not_in_text():
    content = TEMPLATES.render(CATALOGUE, "patient.registered", "email", "en", {"first_name": "<b>Ana</b> & co"})
    assert "&lt;b&gt;Ana&lt;/b&gt; &amp; co" in content.html
    assert "Hello <b>Ana</b> & co," in content.text


@pytest.mark.parametrize(("wanted", "chosen"), [(None, "en"), ("en", "en"), ("en-US", "en"), ("fr-CA", "en")])
def test_the_patients_locale_is_used_when_there_are_templates_for_it(wanted, chosen):
    assert TEMPLATES.locale_for(wanted) == chosen


def copy_of_the_catalogue(tmp_path: Path) -> tuple[Path, Path]:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    config = tmp_path / "messages.yml"
    shutil.copy(CONFIG_DIR / "messages.yml", config)
    return config, templates


@pytest.mark.parametrize(("template", "text", "refusal"), [
    ("en/appointment.booked.sms.txt", "Your ketamine visit is at {{ local_time }}.",
     "en/appointment.booked.sms refused.*ketamine"),
    ("en/invoice.created.subject.txt", "Your infusions invoice", "en/invoice.created.email refused.*infusion"),
    ("en/reminder.day_before.sms.txt", "See you {{ local_tme }}", "en/reminder.day_before.sms does not render"),
    ("en/fee.charged.email.html", "{% if %}", "en/fee.charged.email does not render"),
])
def test_a_template_that_would_reveal_health_details_or_fails_to_render_is_refused_at_start_up(
        tmp_path, template, text, refusal):
    config, templates = copy_of_the_catalogue(tmp_path)
    (templates / template).write_text(text)
    with pytest.raises(TemplateRefused, match=refusal):
        load_message_catalogue(config, Templates(templates))


def test_a_missing_template_is_refused_at_start_up_naming_it(tmp_path):
    config, templates = copy_of_the_catalogue(tmp_path)
    (templates / "en" / "refund.issued.email.html").unlink()
    with pytest.raises(TemplateRefused, match="refund.issued.email.html is missing"):
        load_message_catalogue(config, Templates(templates))


def test_a_locale_a_clinic_adds_is_checked_too_and_falls_back_to_english_for_what_it_lacks(tmp_path):
    config, templates = copy_of_the_catalogue(tmp_path)
    (templates / "es").mkdir()
    (templates / "es" / "appointment.booked.sms.txt").write_text("Su visita: {{ local_time }}. Infusion.")
    with pytest.raises(TemplateRefused, match="es/appointment.booked.sms refused"):
        load_message_catalogue(config, Templates(templates))
    (templates / "es" / "appointment.booked.sms.txt").write_text("Su visita a domicilio: {{ local_time }}.")
    spanish = Templates(templates)
    load_message_catalogue(config, spanish)
    assert spanish.render(CATALOGUE, "appointment.booked", "sms", "es-MX", SAMPLES["appointment.booked"]).text \
        .startswith("Su visita a domicilio")
    assert spanish.render(CATALOGUE, "invoice.created", "email", "es", SAMPLES["invoice.created"]).subject \
        == "Your invoice is ready"


def test_a_message_kind_a_clinic_adds_without_a_sender_is_refused(tmp_path):
    config, templates = copy_of_the_catalogue(tmp_path)
    document = yaml.safe_load(config.read_text())
    document["versions"][0]["kinds"]["birthday"] = {"category": "account", "channels": ["email"]}
    config.write_text(yaml.safe_dump(document))
    with pytest.raises(TemplateRefused, match="birthday"):
        load_message_catalogue(config, Templates(templates))


@pytest.mark.parametrize(("reason", "says"), [
    ("hold_lapsed_and_slot_taken", "no longer free"),
    ("patient_not_eligible_consent_missing", "what is needed before you book again"),
    ("outside_series_window", "what is needed before you book again"),
])
def test_a_failed_booking_says_the_time_was_taken_only_when_it_was(reason, says):
    values = message_values(CATALOGUE, "booking.failed", {"patient_id": "pat_ana", "reason": reason}, "UTC", "Ana")

    content = TEMPLATES.render(CATALOGUE, "booking.failed", "email", "en", values)

    assert says in content.text and says in content.html
    assert "refunded in full" in content.text
