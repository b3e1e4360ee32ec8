"""Rate limits per client (token subject, else IP) and route, over HTTP: the request past the budget is a
429 problem with ``Retry-After`` and ``RateLimit-*``; other clients and other routes keep their own
budgets; every gateway process counts into the same budget (counters in the store)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from nameko.testing.utils import find_free_port
from requests.adapters import HTTPAdapter

from chassis.testing import wait_for
from gateway.service import GatewayService
from gateway.tests.interface.support import Platform, assert_problem, bearer, registration, start_runner

WINDOW = 60


@pytest.fixture(scope="module")
def gateway_settings():
    return {"RATE_LIMIT_ROUTES": {"getPatient": f"3/{WINDOW}", "registerPatient": f"2/{WINDOW}"}}


class SourceAddressAdapter(HTTPAdapter):
    """Requests from another loopback address: another client IP for the gateway."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_at(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", SourceAddressAdapter(address))
    return session


@pytest.fixture(scope="module")
def patients(platform: Platform) -> tuple[str, str]:
    """Two patients, registered from an address of their own (sign-ups are limited per IP)."""
    with client_at("127.0.0.9") as setup:
        ids = []
        for _ in range(2):
            response = setup.post(f"{platform.url}/v1/patients", json=registration(), timeout=30)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        return ids[0], ids[1]


def fresh_client() -> dict[str, str]:
    """A client with an untouched budget: a member of staff (who may read any patient) never seen before."""
    return bearer("admin", f"adm-{uuid.uuid4().hex[:8]}")


def fresh_window() -> None:
    """Start the calls early in a fixed window, so that all of them fall in the same one."""
    if int(datetime.now(UTC).timestamp()) % WINDOW > WINDOW - 10:
        time.sleep(WINDOW - int(datetime.now(UTC).timestamp()) % WINDOW + 0.5)


def test_the_call_past_the_budget_is_429_with_retry_after_and_ratelimit_headers(platform, patients):
    patient = patients[0]
    headers = bearer("patient", patient)
    fresh_window()
    answers = [platform.get(f"/v1/patients/{patient}", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" for a in answers)
    refused = answers[3]
    problem = assert_problem(refused, 429, "rate_limited")
    assert "Dana" not in refused.text and problem["status"] == 429
    # the window's three calls keep weighing as they slide out: the wait may reach into the next window
    assert 1 <= int(refused.headers["Retry-After"]) <= 2 * WINDOW
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Reset"] == refused.headers["Retry-After"]


def test_another_client_still_passes_when_one_is_limited(platform, patients):
    first, second = patients
    limited = fresh_client()
    fresh_window()
    for _ in range(3):
        platform.get(f"/v1/patients/{first}", headers=limited)
    assert platform.get(f"/v1/patients/{first}", headers=limited).status_code == 429
    assert platform.get(f"/v1/patients/{second}", headers=bearer("patient", second)).status_code == 200
    assert platform.get(f"/v1/patients/{first}", headers=fresh_client()).status_code == 200


def test_a_limited_client_still_passes_on_another_route(platform, patients):
    first = patients[0]
    limited = bearer("admin", f"ops-{uuid.uuid4().hex[:8]}")
    fresh_window()
    for _ in range(4):
        platform.get(f"/v1/patients/{first}", headers=limited)
    assert platform.get(f"/v1/patients/{first}", headers=limited).status_code == 429
    other_route = platform.get(f"/v1/patients/{first}/notifications", headers=limited)
    assert other_route.status_code == 200
    assert other_route.headers["RateLimit-Limit"] == "300"  # the default rule


def test_the_refused_request_changes_nothing(platform):
    """Sign-ups are limited per IP: the third from one address registers nobody."""
    fresh_window()
    with client_at("127.0.0.2") as client:
        bodies = [registration() for _ in range(3)]
        answers = [client.post(f"{platform.url}/v1/patients", json=body, timeout=30) for body in bodies]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert_problem(answers[2], 429, "rate_limited")
    assert platform.db("intake").patients.count_documents({"email": bodies[2]["email"]}) == 0


def test_anonymous_clients_are_limited_per_ip(platform):
    fresh_window()
    with client_at("127.0.0.3") as limited, client_at("127.0.0.4") as other:
        for _ in range(2):
            limited.post(f"{platform.url}/v1/patients", json=registration(), timeout=30)
        assert limited.post(f"{platform.url}/v1/patients", json=registration(), timeout=30).status_code == 429
        assert other.post(f"{platform.url}/v1/patients", json=registration(), timeout=30).status_code == 201


def test_every_gateway_process_counts_into_the_same_budget(platform, patients):
    second_address = f"127.0.0.1:{find_free_port()}"
    second = start_runner({**platform.config, "WEB_SERVER_ADDRESS": second_address}, GatewayService)
    try:
        url = f"http://{second_address}"
        wait_for(lambda: requests.get(f"{url}/health", timeout=5).status_code == 200, timeout=20)
        patient, headers = patients[0], fresh_client()
        fresh_window()
        statuses = [platform.get(f"/v1/patients/{patient}", headers=headers).status_code for _ in range(2)]
        statuses += [requests.get(f"{url}/v1/patients/{patient}", headers=headers, timeout=30).status_code
                     for _ in range(2)]
        assert statuses == [200, 200, 200, 429]
    finally:
        second.kill()
