"""Cross-cutting response behaviour: the request id on every answer, CORS for the configured website
origins only, and Prometheus metrics by route and status."""

from __future__ import annotations

import re
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import LATENCY_BUCKETS
from gateway.tests.interface.support import Platform, assert_problem, bearer

APP = "https://app.example"
ADMIN = bearer("admin", "ops-cross")
GENERATED = re.compile(r"^req_[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def gateway_settings():
    return {"CORS_ORIGINS": [APP]}


@pytest.fixture(scope="module")
def patient(platform: Platform) -> str:
    return platform.register()


# --- request id ----------------------------------------------------------------------------------------

# (what is asked) -> response, on a success, a gateway refusal, a domain error and an unknown path
REQUESTS = {
    "ok": ("GET", "/v1/nurses", ADMIN),
    "forbidden": ("GET", "/v1/audit", bearer("nurse", "nur_1")),
    "unauthenticated": ("GET", "/v1/nurses", {}),
    "domain_error": ("GET", "/v1/appointments/apt_none", ADMIN),
    "unknown_path": ("GET", "/nowhere", {}),
    "wrong_method": ("DELETE", "/v1/nurses", ADMIN),
    "public": ("GET", "/health", {}),
}


@pytest.mark.parametrize("kind", REQUESTS)
@pytest.mark.parametrize("given", ["journey-1", "a.b:c-d_E", "x" * 128])
def test_a_valid_request_id_is_echoed(platform, kind, given):
    method, path, headers = REQUESTS[kind]
    response = platform.request(method, path, headers={**headers, "X-Request-ID": given})
    assert response.headers["X-Request-ID"] == given
    if response.status_code >= 400:
        assert assert_problem(response, response.status_code)["request_id"] == given


@pytest.mark.parametrize("kind", REQUESTS)
@pytest.mark.parametrize("given", [None, "", "x" * 129, "x" * 300, "has spaces", "semi;colon", "ünï", "a/b"])
def test_an_absent_or_invalid_request_id_is_replaced_by_a_generated_one(platform, kind, given):
    method, path, headers = REQUESTS[kind]
    if given is not None:
        headers = {**headers, "X-Request-ID": given.encode("utf-8")}
    response = platform.request(method, path, headers=headers)
    generated = response.headers["X-Request-ID"]
    assert GENERATED.match(generated), generated
    if response.status_code >= 400:
        assert assert_problem(response, response.status_code)["request_id"] == generated


def test_generated_request_ids_differ_per_request(platform):
    ids = {platform.get("/health").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


# --- CORS -----------------------------------------------------------------------------------------------


def test_a_request_from_an_allowed_origin_gets_access_control_allow_origin(platform, patient):
    response = platform.get(f"/v1/patients/{patient}", headers={**bearer("patient", patient), "Origin": APP})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "Origin" in response.headers["Vary"]
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Request-ID", "Retry-After", "RateLimit-Remaining", "Idempotent-Replayed"} <= exposed
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("kind", ["unauthenticated", "forbidden", "unknown_path", "wrong_method"])
def test_an_error_to_an_allowed_origin_is_readable_by_the_website(platform, kind):
    method, path, headers = REQUESTS[kind]
    response = platform.request(method, path, headers={**headers, "Origin": APP})
    assert response.status_code >= 400
    assert response.headers["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize(("path", "method", "allowed"), [
    ("/v1/appointments", "POST", {"GET", "POST", "OPTIONS"}),
    ("/v1/patients/pat_1", "GET", {"GET", "PATCH", "OPTIONS"}),
    ("/v1/nurses/nur_1", "PUT", {"PUT", "OPTIONS"}),
])
def test_a_preflight_from_an_allowed_origin_gets_methods_and_headers(platform, path, method, allowed):
    response = platform.request("OPTIONS", path, headers={
        "Origin": APP, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert allowed <= methods <= allowed | {"HEAD"}  # the path's own methods, no others
    headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-request-id"} <= headers
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert response.headers["X-Request-ID"]


def test_a_preflight_runs_no_handler_and_needs_no_token(platform):
    response = platform.request("OPTIONS", "/v1/audit", headers={"Origin": APP, "Access-Control-Request-Method": "GET"})
    assert response.status_code == 204
    assert response.content == b""


def test_a_preflight_for_an_unknown_path_is_404(platform):
    response = platform.request("OPTIONS", "/v1/nowhere", headers={"Origin": APP,
                                                                   "Access-Control-Request-Method": "GET"})
    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize("origin", ["https://evil.example", "http://app.example", "https://app.example.evil.com",
                                    "http://localhost:3000", "null"])
def test_another_origin_gets_no_cors_headers(platform, patient, origin):
    response = platform.get(f"/v1/patients/{patient}", headers={**bearer("patient", patient), "Origin": origin})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    preflight = platform.request("OPTIONS", "/v1/appointments", headers={"Origin": origin,
                                                                         "Access-Control-Request-Method": "POST"})
    assert not [name for name in preflight.headers if name.lower().startswith("access-control-")]


def test_no_origin_gets_no_cors_headers(platform):
    response = platform.get("/health")
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


# --- metrics --------------------------------------------------------------------------------------------


def samples(platform: Platform) -> dict[tuple[str, frozenset], float]:
    response = platform.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def requests_total(values: dict, route: str, method: str, status: int) -> float:
    key = ("gateway_requests_total", frozenset({"route": route, "method": method, "status": str(status)}.items()))
    return values.get(key, 0.0)


def test_metrics_count_requests_by_route_method_and_status(platform, patient):
    before = samples(platform)
    own = bearer("patient", patient)
    for _ in range(3):
        assert platform.get(f"/v1/patients/{patient}", headers=own).status_code == 200
    assert platform.get(f"/v1/patients/{patient}", headers=bearer("patient", "pat_other")).status_code == 403
    assert platform.get("/v1/appointments/apt_none", headers=ADMIN).status_code == 404
    assert platform.get("/v1/nurses").status_code == 401
    after = samples(platform)
    for route, method, status, added in [("getPatient", "GET", 200, 3), ("getPatient", "GET", 403, 1),
                                         ("getAppointment", "GET", 404, 1), ("listNurses", "GET", 401, 1)]:
        assert requests_total(after, route, method, status) - requests_total(before, route, method, status) == added


def test_metrics_expose_the_latency_histogram_with_its_buckets(platform, patient):
    platform.get(f"/v1/patients/{patient}", headers=bearer("patient", patient))
    after = samples(platform)
    labels = {"route": "getPatient", "method": "GET"}
    buckets = {dict(key[1])["le"]: value for key, value in after.items()
               if key[0] == "gateway_request_duration_seconds_bucket"
               and {k: v for k, v in dict(key[1]).items() if k != "le"} == labels}
    assert set(buckets) == {*(str(float(b)) for b in LATENCY_BUCKETS), "+Inf"}
    ordered = [buckets[str(float(b))] for b in LATENCY_BUCKETS] + [buckets["+Inf"]]
    assert ordered == sorted(ordered) and ordered[-1] >= 1  # cumulative
    count = after[("gateway_request_duration_seconds_count", frozenset(labels.items()))]
    assert count == buckets["+Inf"]
    assert after[("gateway_request_duration_seconds_sum", frozenset(labels.items()))] > 0


def test_metrics_are_public_and_not_audited(platform):
    response = platform.get("/metrics", headers={"X-Request-ID": f"m-{uuid.uuid4().hex}"})
    assert response.status_code == 200
    assert "gateway_requests_total" in response.text
    assert platform.db("gateway").audit_log.count_documents({"request_id": response.headers["X-Request-ID"]}) == 0
