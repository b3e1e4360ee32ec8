"""Behind our proxies: anonymous clients are told apart by the address the proxy forwards for, in their rate
limits, their idempotency keys and the audit log; a header from anyone else is ignored."""

from __future__ import annotations

import uuid

import pytest

from gateway.tests.interface.support import as_json, assert_problem, registration

PROXY_HOP = "10.20.30.40"  # a second proxy of ours between the client and the gateway's peer (127.0.0.1)


@pytest.fixture(scope="module")
def gateway_settings():
    return {"TRUSTED_PROXIES": ["127.0.0.1", "10.0.0.0/8"], "RATE_LIMIT_ROUTES": {"registerPatient": "2/3600"}}


def via_proxy(client: str, **headers: str) -> dict[str, str]:
    """What our proxies send: whatever the client claimed, then the client's address, then the inner proxy."""
    return {"X-Forwarded-For": f"6.6.6.6, {client}, {PROXY_HOP}", **headers}


def fresh_address() -> str:
    number = uuid.uuid4().int
    return f"203.{number % 250}.{number // 250 % 250}.{number // 62500 % 250 + 1}"


def test_anonymous_clients_behind_the_proxy_each_have_their_own_budget(platform):
    first, second = fresh_address(), fresh_address()
    answers = [platform.post("/v1/patients", json=registration(), headers=via_proxy(first)) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [201, 201, 429], [as_json(a) for a in answers]
    other = platform.post("/v1/patients", json=registration(), headers=via_proxy(second))
    assert other.status_code == 201, as_json(other)


def test_anonymous_clients_behind_the_proxy_do_not_share_idempotency_keys(platform):
    shared_key = f"k-{uuid.uuid4().hex}"
    one = platform.post("/v1/patients", json=registration(), headers=via_proxy(fresh_address(), **{
        "Idempotency-Key": shared_key}))
    two = platform.post("/v1/patients", json=registration(), headers=via_proxy(fresh_address(), **{
        "Idempotency-Key": shared_key}))
    assert (one.status_code, two.status_code) == (201, 201), (as_json(one), as_json(two))
    assert one.json()["id"] != two.json()["id"]


def test_the_audit_log_records_the_clients_address(platform):
    client = fresh_address()
    response = platform.post("/v1/patients", json=registration(), headers=via_proxy(client))
    assert response.status_code == 201, as_json(response)
    [entry] = platform.db("gateway").audit_log.find({"request_id": response.headers["X-Request-ID"]})
    assert entry["ip"] == client


def test_a_spoofed_header_does_not_escape_the_budget_of_the_address_it_comes_from(platform):
    """Only the hops our proxies wrote count: a client cycling what it claims stays one client."""
    client = fresh_address()
    answers = [platform.post("/v1/patients", json=registration(),
                             headers={"X-Forwarded-For": f"{fresh_address()}, {client}"}) for _ in range(3)]
    assert_problem(answers[-1], 429, "rate_limited")
