"""Consent documents (text in files, one per version) and whether a patient's consent is current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from chassis.config import ConfigVersion

CONFIG_DIR = Path(__file__).parent / "config"


class ConsentDocumentSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    file = fields.String(required=True)

    @validates("file")
    def _exists(self, value: str, **_: object) -> None:
        path = (CONFIG_DIR / value).resolve()
        if CONFIG_DIR.resolve() not in path.parents or not path.is_file():
            raise ValidationError(f"no consent text {value} in {CONFIG_DIR}")


def consent_text(document: ConfigVersion) -> str:
    return (CONFIG_DIR / document["file"]).read_text()


class ConsentSignatureSchema(Schema):
    document_version = fields.String(required=True, validate=validate.Length(min=1, max=40))
    ip = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    user_agent = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


def consent_state(consents: list[dict[str, Any]], current_version: str) -> str:
    """``current`` (a signed, unrevoked consent to the current version), ``outdated`` (only to an older
    version), ``revoked`` (every consent given was revoked) or ``missing``."""
    standing = [c for c in consents if c.get("revoked_at") is None]
    if any(c["document_version"] == current_version for c in standing):
        return "current"
    if standing:
        return "outdated"
    return "revoked" if consents else "missing"
