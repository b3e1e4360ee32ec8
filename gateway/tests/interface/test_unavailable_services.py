"""A service that is not running, or stopped answering: the gateway answers quickly with 503 (unknown or
stopped service) or 504 (no answer within RPC_TIMEOUT_SECONDS), with ``Retry-After``, never hangs;
``/ready`` names the missing service while ``/health`` (broker and store) stays 200."""

from __future__ import annotations

import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gateway.service import GatewayService
from gateway.tests.interface.support import (
    JWT_SECRET,
    Platform,
    as_json,
    assert_problem,
    bearer,
    registration,
    start_runner,
    stop_runner,
)
from services.billing.service import BillingService
from services.intake.service import IntakeService
from services.notifications.service import NotificationsService
from services.scheduling.service import SchedulingService

ADMIN = bearer("admin", "ops-down")
RPC_TIMEOUT = 1


@pytest.fixture(scope="module")
def gateway_settings():
    return {"RPC_TIMEOUT_SECONDS": RPC_TIMEOUT}


@pytest.fixture(scope="module")
def platform_services():
    """Intake never runs on this module's broker: calls to it are unroutable."""
    return SchedulingService, BillingService, NotificationsService, GatewayService


def rpc_errors(platform: Platform) -> dict[tuple[str, str], float]:
    text = platform.get("/metrics").text
    return {(sample.labels["service"], sample.labels["kind"]): sample.value
            for family in text_string_to_metric_families(text) if family.name == "gateway_rpc_errors"
            for sample in family.samples if sample.name == "gateway_rpc_errors_total"}


def test_a_read_from_a_service_that_is_not_running_is_503_with_retry_after(platform):
    before = rpc_errors(platform).get(("intake", "unavailable"), 0)
    response = platform.get("/v1/patients/pat_123", headers=ADMIN, timeout=RPC_TIMEOUT + 10)
    problem = assert_problem(response, 503, "service_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert problem["service"] == "intake"
    assert rpc_errors(platform)[("intake", "unavailable")] == before + 1


def test_a_sign_up_while_intake_is_not_running_is_503_and_its_key_stays_pending(platform):
    """A 5xx is not replayed, nor is its key released: the retry waits for the lease (409 with Retry-After)."""
    headers = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    body = registration()
    first = platform.post("/v1/patients", json=body, headers=headers, timeout=RPC_TIMEOUT + 10)
    assert_problem(first, 503, "service_unavailable")
    assert "Retry-After" in first.headers
    retry = platform.post("/v1/patients", json=body, headers=headers, timeout=RPC_TIMEOUT + 10)
    assert_problem(retry, 409, "request_in_progress")
    assert int(retry.headers["Retry-After"]) >= 1
    assert "Idempotent-Replayed" not in retry.headers


def test_the_other_services_still_answer(platform):
    assert platform.get("/v1/nurses", headers=ADMIN).status_code == 200
    assert platform.get("/v1/invoices", headers=ADMIN).status_code == 200


def test_ready_is_503_naming_the_missing_service_while_health_stays_200(platform):
    ready = platform.get("/ready", timeout=RPC_TIMEOUT + 10)
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["intake"].startswith("unavailable")
    assert "intake" in body["checks"]["intake"]
    assert {name: state for name, state in body["checks"].items() if name != "intake"} == {
        "broker": "ok", "store": "ok", "scheduling": "ok", "billing": "ok", "notifications": "ok"}
    health = platform.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "checks": {"broker": "ok", "store": "ok"}}


def test_a_booking_while_intake_is_not_running_is_503_with_retry_after(platform):
    response = platform.post("/v1/appointments", headers=ADMIN, timeout=RPC_TIMEOUT + 10,
                             json={"patient_id": "pat_123", "visit_type": "iv-mood", "start_at": platform.times.next()})
    assert_problem(response, 503, "service_unavailable")
    assert int(response.headers["Retry-After"]) >= 1


def test_a_booking_while_intake_is_not_running_is_503_and_books_nothing(platform):
    response = platform.post("/v1/appointments", headers=ADMIN, timeout=RPC_TIMEOUT + 10,
                             json={"patient_id": "pat_123", "visit_type": "iv-mood", "start_at": platform.times.next()})
    assert_problem(response, 503, "service_unavailable")
    assert platform.db("scheduling").appointments.count_documents({}) == 0


# --- a service that stopped answering: its queue is there, nobody consumes it -------------------------------


@pytest.fixture
def intake_stopped(runner_factory, service_config, web_config):
    """A fresh vhost and store where intake ran (its RPC queue stays declared) and then stopped."""
    config = {**service_config, **web_config, "JWT_SECRET": JWT_SECRET, "RPC_TIMEOUT_SECONDS": RPC_TIMEOUT}
    intake = start_runner(config, IntakeService)
    stop_runner(intake)
    gateway = runner_factory(config, SchedulingService, GatewayService)
    gateway.start()
    return f"http://{config['WEB_SERVER_ADDRESS']}"


def test_a_service_that_does_not_answer_is_504_with_retry_after_and_no_hang(intake_stopped):
    response = requests.get(f"{intake_stopped}/v1/patients/pat_123", headers=ADMIN, timeout=RPC_TIMEOUT + 10)
    problem = assert_problem(response, 504, "service_timeout")
    assert int(response.headers["Retry-After"]) >= 1
    assert problem["service"] == "intake"
    ready = requests.get(f"{intake_stopped}/ready", timeout=RPC_TIMEOUT + 10)
    assert ready.status_code == 503, as_json(ready)
    assert ready.json()["checks"]["intake"].startswith("unavailable")
    assert requests.get(f"{intake_stopped}/health", timeout=10).status_code == 200
