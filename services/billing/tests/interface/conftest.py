"""Fixtures of billing's money tests (``test_payments``, ``test_packages``, ``test_stripe_events``): billing in
a container on the real broker and store, pointed at the Stripe stand-in; its store; the events it publishes; a
patient of the test's own; and the check that the ledger sums to zero after the test (``ledger_sums_to_zero``,
asked for by the modules that move money). A module may define its own ``billing`` or ``config``."""

import pytest
from kombu import Connection, Exchange, Queue

from chassis.ids import new_id
from services.billing import ledger
from services.billing.service import BillingService


@pytest.fixture
def config(service_config, stripe_double):
    return {**service_config, "STRIPE_API_KEY": "sk_test_billing", "STRIPE_API_BASE": stripe_double,
            "STRIPE_TIMEOUT_SECONDS": 2}


@pytest.fixture
def billing(container_factory, config):
    container = container_factory(BillingService, config)
    container.start()
    return container


@pytest.fixture
def db(mongo_client, database_prefix):
    return mongo_client[database_prefix + "billing"]


@pytest.fixture
def ledger_sums_to_zero(request, db):
    yield
    if "billing" in request.fixturenames:
        assert ledger.problems(list(db.journal.find())) == []


@pytest.fixture
def emitted(billing, config):
    """Every event billing publishes from now on, by type."""
    connection = Connection(config["AMQP_URI"])
    queue = Queue("billing-test-events", Exchange("billing.events", type="topic", durable=True), "#",
                  exclusive=True, channel=connection.channel())
    queue.declare()

    def drain() -> list[dict]:
        found = []
        while (message := queue.get(no_ack=True)) is not None:
            found.append(message.payload)
        return found

    seen: list[dict] = []

    def of_type(kind: str) -> list[dict]:
        seen.extend(drain())
        return [event["payload"] for event in seen if event["type"] == kind]

    yield of_type
    connection.release()


@pytest.fixture
def patient() -> str:
    """A patient of this test only (the stand-in lives for the whole session)."""
    return new_id("pat")
