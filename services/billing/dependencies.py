"""How billing reaches its store and its configuration."""

from __future__ import annotations

from pathlib import Path

from pymongo import ASCENDING
from pymongo.database import Database

from chassis.config import VersionedConfig
from services.billing.catalogue import PriceCatalogueSchema
from services.billing.fees import FeePolicySchema

CONFIG_DIR = Path(__file__).parent / "config"


def create_indexes(db: Database) -> None:
    db.invoices.create_index([("appointment_id", ASCENDING)], name="by_appointment")
    db.invoices.create_index([("patient_id", ASCENDING)], name="by_patient")
    db.quotes.create_index([("hold_id", ASCENDING)], name="by_hold")


def load_price_catalogue(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "prices.yml", PriceCatalogueSchema())


def load_fee_policy(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "fees.yml", FeePolicySchema())
