"""Interface tests of the HTTP gateway: the real services and the gateway in one Nameko runner, on the real
broker (a fresh vhost) and the real store (fresh databases), driven over HTTP with ``requests``.

Starting the platform costs a second or two, so each test module shares one running platform
(``platform``, module scope) on its own module-scoped vhost and databases. A module changes the
gateway's settings by overriding ``gateway_settings``, and the services it runs with ``platform_services``.
Tests only add data (fresh ids, fresh visit times), so they do not depend on one another's order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import pymongo
import pytest
from nameko.testing.utils import find_free_port

from chassis.testing import fresh_databases, wait_for
from gateway.tests.interface.support import ALL_SERVICES, JWT_SECRET, Platform, start_runner
from services.billing.stripe_double import running

TOPOLOGY_FILE = Path(__file__).resolve().parents[3] / "services" / "topology.yml"


@pytest.fixture(scope="module")
def module_rabbit_config(request, scratch_vhosts) -> Iterator[dict[str, str]]:
    """Like nameko's ``rabbit_config``, but one vhost for the whole module."""
    uri = urlparse(request.config.getoption("RABBIT_AMQP_URI"))
    vhost = scratch_vhosts.create("gw_if_")
    yield {"AMQP_URI": f"{uri.scheme}://{uri.netloc}/{quote(vhost, safe='')}", "username": uri.username,
           "vhost": vhost}
    scratch_vhosts.delete(vhost)


@pytest.fixture(scope="module")
def module_database_prefix(mongo_uri) -> Iterator[str]:
    """Fresh databases for the module; dropped afterwards (the store slows down as it grows)."""
    with fresh_databases(mongo_uri, tag="g") as prefix:
        yield prefix


@pytest.fixture(scope="module")
def module_mongo_client(mongo_uri) -> Iterator[pymongo.MongoClient]:
    client = pymongo.MongoClient(mongo_uri, tz_aware=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def stripe_stand_in() -> Iterator[str]:
    """The Stripe stand-in (``services/billing/stripe_double.py``), one for the session: billing pays through it."""
    with running() as base:
        yield base


@pytest.fixture(scope="module")
def module_service_config(module_rabbit_config, mongo_uri, module_database_prefix,
                          stripe_stand_in) -> dict[str, Any]:
    """The root ``service_config`` at module scope, plus the gateway's token secret and, as in production, the
    platform's topology (without it every event is published ``mandatory``, and one that no queue takes holds up
    its aggregate's later events)."""
    return {
        **module_rabbit_config,
        "MONGO_URI": mongo_uri,
        "DATABASE_PREFIX": module_database_prefix,
        "RPC_TIMEOUT_SECONDS": 5,
        "EVENT_RETRY_DELAYS": [0.1, 0.2],
        "OUTBOX_POLL_SECONDS": 0.2,
        "OUTBOX_LEASE_SECONDS": 30,
        "DEAD_LETTER_QUEUE": "infusion.dead-letters",
        "TOPOLOGY_FILE": str(TOPOLOGY_FILE),
        "JWT_SECRET": JWT_SECRET,
        "STRIPE_API_KEY": "sk_test_gateway", "STRIPE_API_BASE": stripe_stand_in,
    }


@pytest.fixture(scope="module")
def gateway_settings() -> dict[str, Any]:
    """Gateway settings of a module's platform; a module overrides this fixture to change them."""
    return {}


@pytest.fixture(scope="module")
def platform_services() -> tuple[type, ...]:
    """The service classes run by a module's platform; a module overrides this fixture to leave some out."""
    return ALL_SERVICES


@pytest.fixture(scope="module")
def platform(module_service_config, gateway_settings, platform_services, module_mongo_client) -> Iterator[Platform]:
    """The services and the gateway in one runner, answering HTTP on a free port."""
    address = f"127.0.0.1:{find_free_port()}"
    config = {**module_service_config, "WEB_SERVER_ADDRESS": address, **gateway_settings}
    runner = start_runner(config, *platform_services)
    platform = Platform(f"http://{address}", config, runner, module_mongo_client)
    try:
        wait_for(lambda: platform.get("/health", timeout=5).status_code == 200, timeout=20, interval=0.1)
        yield platform
    finally:
        platform.http.close()
        runner.kill()  # as nameko's runner_factory: the vhost and databases are thrown away next
