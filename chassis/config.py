"""Versioned configuration a clinic tunes: prices, rules, visit types, limits, operating states.

A file holds a list of versions, each with ``version`` and ``effective_from`` (a UTC instant) and the
settings validated by the owning service's marshmallow schema. Code asks for the version in force at a
moment and records ``version`` with every decision made from it, so a price or an eligibility answer can
always be traced to the rules that produced it. Files are validated at start-up: a bad file stops the
service instead of producing wrong answers later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from marshmallow import EXCLUDE, Schema, ValidationError, fields

from chassis.clock import as_utc, utcnow


class ConfigurationInvalid(Exception):
    pass


class _VersionHeader(Schema):
    class Meta:
        unknown = EXCLUDE

    version = fields.String(required=True)
    effective_from = fields.AwareDateTime(required=True, default_timezone=None)


@dataclass(frozen=True)
class ConfigVersion:
    version: str
    effective_from: datetime
    settings: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]


class VersionedConfig:
    """All versions of one configuration file, oldest first."""

    def __init__(self, name: str, versions: list[ConfigVersion]) -> None:
        if not versions:
            raise ConfigurationInvalid(f"{name}: no versions")
        self.name = name
        self.versions = sorted(versions, key=lambda v: v.effective_from)
        seen = [v.version for v in self.versions]
        if len(seen) != len(set(seen)):
            raise ConfigurationInvalid(f"{name}: duplicate version labels {seen}")

    @classmethod
    def load(cls, path: str | Path, schema: Schema) -> VersionedConfig:
        path = Path(path)
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationInvalid(f"{path}: {exc}") from exc
        return cls.from_document(str(path), document, schema)

    @classmethod
    def from_document(cls, name: str, document: Any, schema: Schema) -> VersionedConfig:
        if not isinstance(document, dict) or not isinstance(document.get("versions"), list):
            raise ConfigurationInvalid(f"{name}: expected a mapping with a 'versions' list")
        versions = []
        for index, raw in enumerate(document["versions"]):
            try:
                header = _VersionHeader().load(raw)
                settings = schema.load({k: v for k, v in raw.items() if k not in ("version", "effective_from")})
            except ValidationError as exc:
                raise ConfigurationInvalid(f"{name}: version #{index}: {exc.messages}") from exc
            versions.append(ConfigVersion(header["version"], as_utc(header["effective_from"]), settings))
        return cls(name, versions)

    def effective_at(self, moment: datetime | None = None) -> ConfigVersion:
        moment = as_utc(moment) if moment is not None else utcnow()
        in_force = [v for v in self.versions if v.effective_from <= moment]
        if not in_force:
            raise ConfigurationInvalid(f"{self.name}: no version in force at {moment.isoformat()}")
        return in_force[-1]
