"""Prometheus metrics of the gateway: requests by route and status, latency, RPC errors, audit failures."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """One registry per gateway process (scrape each process)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("gateway_requests_total", "HTTP requests answered",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("gateway_request_duration_seconds", "Time to answer an HTTP request",
                                 ["route", "method"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rpc_errors = Counter("gateway_rpc_errors_total", "RPC calls that failed or timed out",
                                  ["service", "kind"], registry=self.registry)
        self.audit_failures = Counter("gateway_audit_failures_total",
                                      "Audit entries whose outcome could not be recorded (alert on any)",
                                      registry=self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def rpc_error(self, service: str, kind: str) -> None:
        self.rpc_errors.labels(service, kind).inc()

    def audit_failure(self) -> None:
        self.audit_failures.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
