"""How intake reaches its store and its configuration."""

from __future__ import annotations

from pathlib import Path

from pymongo import ASCENDING
from pymongo.database import Database

from chassis.config import VersionedConfig
from services.intake.domain import BookingRulesSchema

CONFIG_DIR = Path(__file__).parent / "config"


def create_indexes(db: Database) -> None:
    db.patients.create_index([("email", ASCENDING)], unique=True, name="one_patient_per_email")
    db.patients.create_index([("clinician_id", ASCENDING)], name="by_clinician")


def load_booking_rules(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "booking_rules.yml", BookingRulesSchema())
