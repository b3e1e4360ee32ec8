"""End-to-end fixtures: the real processes (``nameko run`` per service and the gateway), on the real
broker (a fresh vhost) and the real store (fresh databases), driven over HTTP."""

from __future__ import annotations

import os
import socket
from urllib.parse import quote

import pytest

from chassis.testing import fresh_databases
from deploy.processes import Platform
from gateway.auth import AuthSettings, mint_token

JWT_SECRET = "end-to-end-test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EndToEndPlatform(Platform):
    def token(self, role: str, subject: str) -> dict[str, str]:
        settings = AuthSettings(secret=JWT_SECRET)
        return {"Authorization": f"Bearer {mint_token(settings, subject, role, ttl_seconds=3600)}"}


@pytest.fixture(scope="module")
def vhost(scratch_vhosts):
    name = scratch_vhosts.create("e2e_")
    yield name
    scratch_vhosts.delete(name)


@pytest.fixture(scope="module")
def e2e_database_prefix(mongo_uri):
    with fresh_databases(mongo_uri, tag="e") as prefix:
        yield prefix


@pytest.fixture(scope="module")
def platform(vhost, mongo_uri, e2e_database_prefix, tmp_path_factory):
    prefix = e2e_database_prefix
    env = {**os.environ, "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}",
           "MONGO_URI": mongo_uri, "DATABASE_PREFIX": prefix, "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}",
           "JWT_SECRET": JWT_SECRET, "EVENT_RETRY_DELAYS": "[0.2, 0.5]", "OUTBOX_POLL_SECONDS": "0.3",
           "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO",
           "RATE_LIMIT_REGISTER": "1000/3600"}  # every sign-up here comes from one address
    env.pop("STRIPE_API_KEY", None)  # never Stripe itself from the tests
    platform = EndToEndPlatform(env, tmp_path_factory.mktemp("logs"))
    platform.start_stripe_double(free_port())
    platform.start_all()
    try:
        platform.wait_until_ready()
        platform.connect_stripe_webhooks()
        yield platform
    finally:
        platform.stop()


@pytest.fixture(autouse=True)
def ledger_sums_to_zero(request, mongo_uri):
    """After every end-to-end test, billing's ledger balances: each journal entry and the whole."""
    yield
    if "platform" not in request.fixturenames:
        return
    import pymongo

    from services.billing.ledger import problems

    prefix = request.getfixturevalue("e2e_database_prefix")
    with pymongo.MongoClient(mongo_uri) as client:
        assert problems(client[prefix + "billing"].journal.find({}, {"outbox": 0})) == []
