"""How intake reaches its store and its configuration (every file validated at start-up)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pymongo import ASCENDING
from pymongo.database import Database

from chassis.config import ConfigurationInvalid, ConfigVersion, VersionedConfig
from services.intake.chart import Clinic
from services.intake.consents import ConsentDocumentSchema
from services.intake.contraindications import ContraindicationRulesSchema, unreadable_answers
from services.intake.domain import BookingRulesSchema
from services.intake.reviews import ProtocolsSchema
from services.intake.screening import InstrumentsSchema

CONFIG_DIR = Path(__file__).parent / "config"


def create_indexes(db: Database) -> None:
    db.patients.create_index([("email", ASCENDING)], unique=True, name="one_patient_per_email")
    db.patients.create_index([("clinician_id", ASCENDING)], name="by_clinician")
    db.patients.create_index([("review_queue_key", ASCENDING)], name="review_queue")
    db.patients.create_index([("reviews.id", ASCENDING)], name="by_review")


def load_booking_rules(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "booking_rules.yml", BookingRulesSchema())


class ClinicConfiguration:
    """Every versioned file intake decides from; ``in_force()`` gives the versions in force at a moment."""

    def __init__(self, config_dir: Path = CONFIG_DIR) -> None:
        self.booking_rules = load_booking_rules(config_dir / "booking_rules.yml")
        self.instruments = VersionedConfig.load(config_dir / "instruments.yml", InstrumentsSchema())
        self.contraindications = VersionedConfig.load(config_dir / "contraindications.yml",
                                                      ContraindicationRulesSchema())
        self.protocols = VersionedConfig.load(config_dir / "protocols.yml", ProtocolsSchema())
        self.consent_documents = VersionedConfig.load(config_dir / "consent_documents.yml", ConsentDocumentSchema())
        check_rules_read_what_is_asked(self.contraindications, self.instruments)

    def in_force(self, moment: datetime | None = None) -> Clinic:
        return Clinic(self.booking_rules.effective_at(moment), self.instruments.effective_at(moment),
                      self.contraindications.effective_at(moment), self.protocols.effective_at(moment),
                      self.consent_documents.effective_at(moment))

    def contraindication_rules(self, version: str) -> ConfigVersion:
        """The rule set a past decision used (its texts explain that decision), or the one in force."""
        labelled = [v for v in self.contraindications.versions if v.version == version]
        return labelled[0] if labelled else self.contraindications.effective_at()


def in_force_together(first: VersionedConfig, second: VersionedConfig) -> list[tuple[ConfigVersion, ConfigVersion]]:
    """Every pair of versions of two files that are (or will be) in force at the same moment."""
    def spans(config: VersionedConfig) -> list[tuple[ConfigVersion, datetime | None]]:
        ends: list[datetime | None] = [v.effective_from for v in config.versions[1:]]
        return list(zip(config.versions, [*ends, None], strict=True))

    return [(a, b) for a, a_end in spans(first) for b, b_end in spans(second)
            if (b_end is None or a.effective_from < b_end) and (a_end is None or b.effective_from < a_end)]


def check_rules_read_what_is_asked(contraindications: VersionedConfig, instruments: VersionedConfig) -> None:
    """At start-up: every contraindication rule reads an item that the instruments in force with it ask before
    the review, so no rule can silently never fire."""
    problems = [f"{contraindications.name} {rules.version}: {problem}"
                for rules, forms in in_force_together(contraindications, instruments)
                for problem in unreadable_answers(rules, forms)]
    if problems:
        raise ConfigurationInvalid("; ".join(problems))
