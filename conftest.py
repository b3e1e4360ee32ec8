"""Root test configuration. Eventlet must patch the process before anything else is imported."""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import pymongo  # noqa: E402
import pytest  # noqa: E402
import requests  # noqa: E402

from chassis.testing import ScratchVhosts, VhostPipeline, fresh_databases  # noqa: E402

ROOT = Path(__file__).parent


@pytest.fixture(scope="session")
def mongo_uri():
    """A real MongoDB-wire server (mongoeco, in memory) in its own process for the whole test session."""
    process = subprocess.Popen([sys.executable, str(ROOT / "deploy" / "mongo_server.py"), "--memory", "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    if not line.startswith("ready "):
        process.kill()
        raise RuntimeError(f"mongo server did not start: {line!r}")
    uri = line.split(" ", 1)[1]
    yield uri
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def scratch_vhosts(request) -> ScratchVhosts:
    """Test vhosts on the machine's broker; a killed run's leftovers are deleted first."""
    user = urlsplit(request.config.getoption("RABBIT_AMQP_URI")).username or "guest"
    vhosts = ScratchVhosts(request.config.getoption("RABBIT_API_URI"), user)
    vhosts.remove_orphans()
    return vhosts


@pytest.fixture(scope="session")
def vhost_pipeline(scratch_vhosts):
    """Replaces nameko's: its vhost maker stopped for good at the first dropped management connection, and
    every later test then waited for a vhost until pytest's timeout ended the run (see ``ScratchVhosts``)."""
    with VhostPipeline(scratch_vhosts).run() as pipeline:
        yield pipeline


@pytest.fixture
def database_prefix(mongo_uri):
    """A fresh set of databases per test; dropped afterwards to keep the store small (and fast)."""
    with fresh_databases(mongo_uri) as prefix:
        yield prefix


@pytest.fixture
def mongo_client(mongo_uri):
    client = pymongo.MongoClient(mongo_uri, tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def service_config(rabbit_config, mongo_uri, database_prefix):
    """Settings for services under test: a fresh vhost, fresh databases, short delays."""
    return {
        **rabbit_config,
        "MONGO_URI": mongo_uri,
        "DATABASE_PREFIX": database_prefix,
        "RPC_TIMEOUT_SECONDS": 5,
        "EVENT_RETRY_DELAYS": [0.1, 0.2],
        "OUTBOX_POLL_SECONDS": 0.2,
        "OUTBOX_LEASE_SECONDS": 30,
        "DEAD_LETTER_QUEUE": "infusion.dead-letters",
    }


@pytest.fixture
def web_session(web_config_port):
    """nameko's own fixture imports werkzeug's removed ``url_join``; this one does not."""
    session = requests.Session()
    base = f"http://127.0.0.1:{web_config_port}"

    class Session:
        def request(self, method, url, **kwargs):
            return session.request(method, base + url, **kwargs)

        def __getattr__(self, name):
            method = name.upper()
            return lambda url, **kwargs: self.request(method, url, **kwargs)

    yield Session()
    session.close()

