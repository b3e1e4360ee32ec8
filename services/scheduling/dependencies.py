"""How scheduling reaches its store and its configuration."""

from __future__ import annotations

from pathlib import Path

from pymongo import ASCENDING
from pymongo.database import Database

from chassis.config import VersionedConfig
from services.scheduling.domain import CalendarSchema

CONFIG_DIR = Path(__file__).parent / "config"


def create_indexes(db: Database) -> None:
    # One appointment per nurse slot: the store refuses a second claim on any slot key.
    db.appointments.create_index([("slot_keys", ASCENDING)], unique=True, name="one_visit_per_nurse_slot",
                                 partialFilterExpression={"slot_keys.0": {"$exists": True}})
    db.appointments.create_index([("patient_id", ASCENDING)], name="by_patient")


def load_calendar(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "visit_types.yml", CalendarSchema())
