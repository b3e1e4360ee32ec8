"""The wording of every message, in template files per message kind, part and locale, and the minimum-necessary
check on what they render.

``templates/<locale>/<kind>.<part>``: an email is three parts (``subject.txt``, ``email.txt``, ``email.html``),
a text one (``sms.txt``). Jinja2 renders them, escaping values in HTML, refusing any value a template names
that the service does not give (a misspelt ``{{ frist_name }}`` fails at start-up, not in a patient's inbox).
``check_templates`` renders every template of every kind the configuration sends with sample values at
start-up and refuses the whole catalogue, naming the template, if a subject or a text carries a forbidden word.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound, select_autoescape

from chassis.config import ConfigurationInvalid, ConfigVersion, VersionedConfig

TEMPLATES_DIR = Path(__file__).parent / "templates"
DEFAULT_LOCALE = "en"
PARTS = {"email": ("subject.txt", "email.txt", "email.html"), "sms": ("sms.txt",)}


class HealthDetailInText(Exception):
    """A text or subject line would reveal health information; it is never sent."""


class TemplateRefused(ConfigurationInvalid):
    """A template is missing, fails to render, or would put a health word in a text or a subject line."""


@dataclass(frozen=True)
class Content:
    """What one message says on one channel: a subject and an HTML part for email, text alone for SMS."""

    text: str
    subject: str | None = None
    html: str | None = None


def assert_no_health_words(text: str, forbidden_words: list[str]) -> None:
    """Refuse a text holding a forbidden word, or its plural ("infusions", "doses"); "Spain" is fine."""
    forbidden = {w.lower() for w in forbidden_words}
    words = set(re.findall(r"[a-z]+", text.lower()))
    singular = {w[:-2] for w in words if w.endswith("es")} | {w[:-1] for w in words if w.endswith("s")}
    found = sorted((words | singular) & forbidden)
    if found:
        raise HealthDetailInText(f"text would reveal health details: {found}")


class Templates:
    """The template files, one folder per locale."""

    def __init__(self, directory: str | Path = TEMPLATES_DIR) -> None:
        self.directory = Path(directory)
        self.locales = sorted(p.name for p in self.directory.iterdir() if p.is_dir())
        if DEFAULT_LOCALE not in self.locales:
            raise TemplateRefused(f"{self.directory}: no '{DEFAULT_LOCALE}' templates")
        # one environment per locale; a part not translated yet falls back to the English one
        self.environments = {locale: Environment(
            loader=FileSystemLoader([self.directory / locale, self.directory / DEFAULT_LOCALE]),
            undefined=StrictUndefined, trim_blocks=True,
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        ) for locale in self.locales}

    def locale_for(self, wanted: str | None) -> str:
        """The patient's locale when there are templates for it (``es-MX``, else ``es``), else English."""
        for candidate in (wanted, (wanted or "").replace("_", "-").split("-")[0]):
            if candidate and candidate in self.locales:
                return candidate
        return DEFAULT_LOCALE

    def render(self, catalogue: ConfigVersion, kind: str, channel: str, locale: str | None,
               values: dict[str, Any]) -> Content:
        """One message's content, its subject and text checked for health words."""
        locale = self.locale_for(locale)
        values = {"clinic": catalogue["clinic"], **values}
        parts = {part: self._render_part(locale, kind, part, values) for part in PARTS[channel]}
        forbidden = catalogue["forbidden_words"]
        if channel == "sms":
            text = parts["sms.txt"]
            assert_no_health_words(text, forbidden)
            return Content(text)
        subject = " ".join(parts["subject.txt"].split())
        assert_no_health_words(subject, forbidden)
        return Content(parts["email.txt"], subject, parts["email.html"])

    def _render_part(self, locale: str, kind: str, part: str, values: dict[str, Any]) -> str:
        return self.environments[locale].get_template(f"{kind}.{part}").render(values).strip()


def check_templates(config: VersionedConfig, templates: Templates,
                    samples: Callable[[ConfigVersion], dict[str, dict[str, Any]]]) -> None:
    """Render every template of every kind each configuration version sends, in every locale, with sample
    values: a missing template, one that fails to render, or a health word in a subject or a text refuses
    the catalogue, naming the template."""
    for version in config.versions:
        values = samples(version)
        for kind, settings in version["kinds"].items():
            if kind not in values:
                raise TemplateRefused(f"{config.name} {version.version}: no message kind {kind!r} is ever sent")
            for locale in templates.locales:
                for channel in settings["channels"]:
                    name = f"{locale}/{kind}.{channel}"
                    try:
                        templates.render(version, kind, channel, locale, values[kind])
                    except TemplateNotFound as exc:
                        raise TemplateRefused(f"template {exc.name} is missing (for {name})") from exc
                    except TemplateError as exc:
                        raise TemplateRefused(f"template {name} does not render: {exc}") from exc
                    except HealthDetailInText as exc:
                        raise TemplateRefused(f"template {name} refused: {exc}") from exc

