"""The gateway's own store down: every route, /health included, answers 503 with Retry-After within a bounded
wait (``MONGO_TIMEOUT_MS``), never a 500 and never a hang; once the store is back, so is the gateway.

The store here is the module's own (``deploy/mongo_server.py`` in a subprocess on a free port), stopped and
started by the tests; the shared test store is never touched."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from nameko.testing.utils import find_free_port

from chassis.testing import wait_for
from deploy.processes import ROOT
from gateway.service import GatewayService
from gateway.tests.interface.support import PROBLEM_JSON, as_json, bearer, registration

ADMIN = bearer("admin", "ops-store")


class OwnStore:
    """A throwaway store process on one port, which can be stopped and started again."""

    def __init__(self) -> None:
        self.port = find_free_port()
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> None:
        if self.process is not None:
            return
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy" / "mongo_server.py"), "--port", str(self.port), "--memory"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout.readline().startswith("ready "), "the test's store did not start"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="module")
def own_store() -> Iterator[OwnStore]:
    store = OwnStore()
    store.start()
    yield store
    store.stop()


@pytest.fixture(scope="module")
def gateway_settings(own_store):
    return {"MONGO_URI": own_store.uri, "MONGO_TIMEOUT_MS": 500}


@pytest.fixture(scope="module")
def platform_services():
    """The gateway alone: what is tested is its own store, not the services'."""
    return (GatewayService,)


@pytest.fixture(scope="module")
def store_down(platform, own_store) -> Iterator[None]:
    own_store.stop()
    yield
    own_store.start()


ROUTES = [
    ("GET", "/health", {}, {}),
    ("GET", "/ready", {}, {}),
    ("GET", "/metrics", {}, {}),
    ("GET", "/openapi.json", {}, {}),
    ("GET", "/v1/nurses", ADMIN, {}),
    ("GET", "/v1/audit", ADMIN, {}),
    ("GET", "/v1/patients/pat_123", ADMIN, {}),
    ("POST", "/v1/patients", {"Idempotency-Key": "k-store-down"}, {"json": registration()}),
]


@pytest.mark.parametrize(("method", "path", "headers", "kwargs"), ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES])
def test_with_the_store_down_every_route_answers_503_with_retry_after(platform, store_down, method, path, headers,
                                                                      kwargs):
    response = platform.request(method, path, headers=headers, timeout=30, **kwargs)
    assert response.status_code == 503, as_json(response)
    assert int(response.headers["Retry-After"]) >= 1
    if path in ("/health", "/ready") and response.headers["Content-Type"] == "application/json":
        assert response.json()["checks"]["store"].startswith("unavailable"), as_json(response)
    else:
        assert response.headers["Content-Type"] == PROBLEM_JSON
        assert response.json()["code"] == "store_unavailable", as_json(response)


def test_once_the_store_is_back_the_gateway_answers_again(platform, own_store):
    own_store.stop()
    assert platform.get("/health", timeout=30).status_code == 503
    own_store.start()
    wait_for(lambda: platform.get("/health").status_code == 200, timeout=20, interval=0.2)
    assert platform.get("/metrics").status_code == 200
