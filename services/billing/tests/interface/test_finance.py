"""Finance on the real broker and store: an export paged through billing by cursor, reconciliation against the
stand-in's balance transactions (a stand-in of its own, so only these payments are at "Stripe"), and
``infusion ledger check`` on the journal."""

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from nameko.testing.services import entrypoint_hook

from services.billing.commands import export_pages, ledger_check, register
from services.billing.service import BillingService
from services.billing.stripe_double import running


@pytest.fixture(scope="module")
def own_stripe():
    with running() as base:
        yield base


@pytest.fixture
def billing(container_factory, service_config, own_stripe):
    container = container_factory(BillingService, {**service_config, "STRIPE_API_KEY": "sk_test_finance",
                                                   "STRIPE_API_BASE": own_stripe})
    container.start()
    return container


class Local:
    """The billing container's RPC methods, called in process (as the CLI calls them through the broker)."""

    def __init__(self, container):
        self.container = container

    def __getattr__(self, name):
        def method(*args, **kwargs):
            with entrypoint_hook(self.container, name) as entrypoint:
                return entrypoint(*args, **kwargs)
        return method


def paid_deposits(billing, count: int) -> list[dict]:
    expires = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    paid = []
    for n in range(count):
        billing.quote({"patient_id": f"pat_fin_{n}", "visit_type": "iv-mood", "hold_id": f"hld_fin_{n}",
                       "expires_at": expires})
        paid.append(billing.pay_deposit(f"hld_fin_{n}", "pm_card_visa"))
    return paid


def test_an_export_is_paged_through_by_cursor_and_reconciles_with_stripe(billing, monkeypatch, mongo_client,
                                                                         database_prefix):
    rpc = Local(billing)
    paid = paid_deposits(rpc, 3)
    today = datetime.now(UTC).date()

    rows = list(export_pages(rpc, "payments", today, today))
    reconciled = rpc.reconcile(today.isoformat(), today.isoformat())

    assert sorted(row["payment_intent_id"] for row in rows) == sorted(p["payment_intent_id"] for p in paid)
    assert reconciled["differences"] == [] and reconciled["stripe_transactions"] == 3
    host, port = mongo_client.address
    monkeypatch.setenv("MONGO_URI", f"mongodb://{host}:{port}/?directConnection=true")
    monkeypatch.setenv("DATABASE_PREFIX", database_prefix)
    assert ledger_check(argparse.Namespace()) == 0

    mongo_client[database_prefix + "billing"].journal.update_one({"kind": "deposit"},
                                                                 {"$inc": {"lines.0.amount_cents": 1}})
    assert [d["problem"] for d in rpc.reconcile(today.isoformat(), today.isoformat())["differences"]] == [
        "amount_differs"]
    assert ledger_check(argparse.Namespace()) == 1


def test_the_commands_register_under_the_infusion_parser():
    parser = argparse.ArgumentParser(prog="infusion")
    register(parser.add_subparsers(dest="command"))

    check = parser.parse_args(["ledger", "check"])
    export = parser.parse_args(["export", "daily-revenue", "--from", "2026-11-01", "--to", "2026-11-30",
                                "--format", "jsonl"])
    reconcile = parser.parse_args(["reconcile", "--from", "2026-11-01", "--to", "2026-11-30"])

    assert check.run is ledger_check
    assert (export.kind, export.format, export.date_to.day) == ("daily-revenue", "jsonl", 30)
    assert reconcile.run.__name__ == "reconcile_command"
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "everything", "--from", "2026-11-01", "--to", "2026-11-30"])


def test_a_package_sale_reconciles_with_its_charge_at_stripe(container_factory, service_config):
    with running() as stripe_base:  # a stand-in of its own: only this sale is at "Stripe"
        container = container_factory(BillingService, {**service_config, "STRIPE_API_KEY": "sk_test_packages",
                                                       "STRIPE_API_BASE": stripe_base})
        container.start()
        rpc = Local(container)
        bought = rpc.buy_package({"patient_id": "pat_fin_pkg", "package": "induction-6",
                                  "payment_method_id": "pm_card_visa"})
        today = datetime.now(UTC).date()

        reconciled = rpc.reconcile(today.isoformat(), today.isoformat())
        rows = list(export_pages(rpc, "payments", today, today))
        first_page = rpc.export_page("payments", today.isoformat(), today.isoformat(), limit=100)

    assert (reconciled["stripe_transactions"], reconciled["differences"]) == (1, [])
    assert [(row["kind"], row["payment_intent_id"]) for row in rows] == [("package", bought["payment_intent_id"])]
    assert (first_page["total_entries"], first_page["entries"]) == (1, 1)  # the CLI's progress bar total
