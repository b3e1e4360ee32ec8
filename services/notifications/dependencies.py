"""How notifications reaches its store and its configuration."""

from __future__ import annotations

from pathlib import Path

from pymongo import ASCENDING
from pymongo.database import Database

from chassis.config import VersionedConfig
from services.notifications.domain import MessageCatalogueSchema

CONFIG_DIR = Path(__file__).parent / "config"


def create_indexes(db: Database) -> None:
    db.messages.create_index([("patient_id", ASCENDING)], name="by_patient")


def load_message_catalogue(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "messages.yml", MessageCatalogueSchema())
