"""How scheduling reaches its store and its configuration."""

from __future__ import annotations

from pathlib import Path

from pymongo import ASCENDING
from pymongo.database import Database

from chassis.config import VersionedConfig
from services.scheduling.domain import CalendarSchema
from services.scheduling.series import ProtocolsSchema
from services.scheduling.visits import VisitRulesSchema

CONFIG_DIR = Path(__file__).parent / "config"


def create_indexes(db: Database) -> None:
    # Holds and appointments are one collection so that one unique index covers both: no two claims share a
    # key of a nurse's or a patient's time (released claims keep no slot keys).
    db.appointments.create_index([("slot_keys", ASCENDING)], unique=True, name="one_visit_per_nurse_slot",
                                 partialFilterExpression={"slot_keys.0": {"$exists": True}})
    # Claims on a nurse's working day take its revisions one by one (see domain): travel is checked against
    # exactly the visits a claim has read.
    db.appointments.create_index([("revision_keys", ASCENDING)], unique=True, name="one_claim_per_day_revision",
                                 partialFilterExpression={"revision_keys.0": {"$exists": True}})
    db.appointments.create_index([("hold_id", ASCENDING)], unique=True, name="one_document_per_hold",
                                 partialFilterExpression={"hold_id": {"$exists": True}})
    db.appointments.create_index([("patient_id", ASCENDING), ("start_at", ASCENDING)], name="by_patient")
    db.appointments.create_index([("nurse_id", ASCENDING), ("work_day", ASCENDING)], name="by_nurse_day")
    db.appointments.create_index([("status", ASCENDING), ("expires_at", ASCENDING)], name="holds_by_expiry")
    db.nurses.create_index([("licences.state", ASCENDING)], name="by_licence_state")
    # The controlled-substance record is append-only: entries are inserted, never changed.
    db.waitlist.create_index([("status", ASCENDING), ("created_at", ASCENDING)], name="waiting_in_order")
    db.series.create_index([("patient_id", ASCENDING), ("created_at", ASCENDING)], name="by_patient")
    db.appointments.create_index([("series_id", ASCENDING)], name="sessions_of_series",
                                 partialFilterExpression={"series_id": {"$exists": True}})
    db.controlled_substance_log.create_index([("recorded_at", ASCENDING)], name="by_time")


def load_calendar(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "visit_types.yml", CalendarSchema())


def load_visit_rules(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "visit_rules.yml", VisitRulesSchema())


def load_protocols(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "protocols.yml", ProtocolsSchema())
