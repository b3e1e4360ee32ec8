"""How billing reaches its store and its configuration."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nameko.extensions import DependencyProvider
from pymongo import ASCENDING
from pymongo.database import Database

from chassis.config import VersionedConfig
from services.billing.catalogue import PriceCatalogueSchema
from services.billing.documents import PracticeSchema
from services.billing.fees import FeePolicySchema
from services.billing.payments import Payments

CONFIG_DIR = Path(__file__).parent / "config"
log = logging.getLogger(__name__)


def create_indexes(db: Database) -> None:
    db.invoices.create_index([("appointment_id", ASCENDING)], name="by_appointment")
    db.invoices.create_index([("patient_id", ASCENDING)], name="by_patient")
    db.quotes.create_index([("hold_id", ASCENDING)], name="by_hold")
    db.journal.create_index([("lines.invoice_id", ASCENDING)], name="by_invoice")
    db.journal.create_index([("lines.patient_id", ASCENDING)], name="by_patient")
    db.journal.create_index([("posted_at", ASCENDING), ("_id", ASCENDING)], name="by_time")
    db.payments.create_index([("invoice_id", ASCENDING)], name="by_invoice")


def load_price_catalogue(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "prices.yml", PriceCatalogueSchema())


def load_fee_policy(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "fees.yml", FeePolicySchema())


class StripeAccount(DependencyProvider):
    """Billing's Stripe adapter, configured from ``STRIPE_API_KEY`` and ``STRIPE_API_BASE`` (empty: Stripe itself;
    ``make run`` and the tests point it at the stand-in)."""

    def setup(self) -> None:
        config = self.container.config
        if not config.get("STRIPE_API_KEY"):
            log.warning("STRIPE_API_KEY is not set: billing takes no payments (quotes and invoices still work)")
            self.payments = None
            return
        self.payments = Payments(str(config["STRIPE_API_KEY"]),
                                 api_base=config.get("STRIPE_API_BASE") or None,
                                 timeout_seconds=float(config.get("STRIPE_TIMEOUT_SECONDS", 10)),
                                 max_network_retries=int(config.get("STRIPE_MAX_NETWORK_RETRIES", 2)))

    def get_dependency(self, worker_ctx: Any) -> Payments | None:
        return self.payments


def load_practice(path: str | Path | None = None) -> VersionedConfig:
    return VersionedConfig.load(path or CONFIG_DIR / "practice.yml", PracticeSchema())
