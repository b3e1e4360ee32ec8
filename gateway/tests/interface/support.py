"""Helpers of the gateway interface tests: tokens, bodies, problem checks, and the running platform's handle."""

from __future__ import annotations

import copy
import itertools
import json
import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import eventlet
import pymongo
import requests
from nameko.runners import ServiceRunner

from chassis.testing import wait_for
from gateway.auth import AuthSettings, mint_token
from gateway.service import GatewayService
from services.billing.service import BillingService
from services.intake.service import IntakeService
from services.intake.walkthrough import VISIT_DETAILS, clear_over_http
from services.notifications.service import NotificationsService
from services.scheduling.service import SchedulingService
from services.scheduling.tests.examples import nurse_record

JWT_SECRET = "gateway-interface-tests-secret-0123456789"  # 41 bytes: HS256 wants at least 32
AUTH = AuthSettings(secret=JWT_SECRET)
ALL_SERVICES = (IntakeService, SchedulingService, BillingService, NotificationsService, GatewayService)
PROBLEM_JSON = "application/problem+json"
DENVER = "America/Denver"
HTTP_TIMEOUT = 30  # a hung gateway fails the test instead of hanging the suite


def token(role: str, subject: str, **kwargs: Any) -> str:
    return mint_token(AUTH, subject, role, **kwargs)


def bearer(role: str, subject: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, subject, **kwargs)}"}


def registration(**overrides: Any) -> dict[str, Any]:
    """A valid sign-up body for an adult in Denver, with a fresh e-mail address."""
    body = {
        "first_name": "Dana", "last_name": "Rivera", "email": f"p-{uuid.uuid4().hex[:12]}@example.com",
        "phone": "+13035550142", "date_of_birth": "1987-06-15",
        "address": {"line1": "1600 Glenarm Pl", "city": "Denver", "state": "CO", "postal_code": "80202"},
        "time_zone": DENVER, "sms_opt_in": True, **copy.deepcopy(VISIT_DETAILS),
    }
    body.update(overrides)
    return body


def assert_problem(response: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Every error is problem+json whose ``status`` is the HTTP status, with the request id in header and body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == PROBLEM_JSON, response.headers
    body = response.json()
    assert body["status"] == status, body
    assert {"type", "title", "status", "code"} <= set(body), body
    request_id = response.headers.get("X-Request-ID")
    assert request_id, response.headers
    if "request_id" in body:
        assert body["request_id"] == request_id, (body, response.headers)
    if code is not None:
        assert body["code"] == code, body
    return body


class VisitTimes:
    """Distinct bookable visit starts: 2 to 79 days ahead at 09:00, 12:00 or 15:00 in Denver, which is 08:00,
    11:00 or 14:00 in Los Angeles, inside visit hours (08:00 to 19:00 local) in both. A visit (up to 120 min)
    ends an hour before the next start, time enough to travel anywhere near Denver, so tests of one module
    never collide on a nurse by accident. A test that needs another time of day takes a whole day for it
    (``reserve_day``): no start given before falls on that day, and none given after will."""

    def __init__(self, time_zone: str = DENVER) -> None:
        self.zone = ZoneInfo(time_zone)
        days = list(range(2, 80))
        random.Random(uuid.uuid4().int).shuffle(days)  # modules on one store still get different days
        self._starts = ((day, hour) for day in days for hour in (9, 12, 15))
        self._given: set[date] = set()
        self._reserved: set[date] = set()

    def next(self) -> str:
        for day, hour in self._starts:
            visit_day = datetime.now(self.zone).date() + timedelta(days=day)
            if visit_day not in self._reserved:
                self._given.add(visit_day)
                return datetime.combine(visit_day, time(hour, 0), tzinfo=self.zone).astimezone(UTC).isoformat()
        raise RuntimeError("no visit starts left for this module")

    def reserve_day(self, earliest: date) -> date:
        """The first day from ``earliest`` on which no start was given; none will be given on it from now on."""
        day = earliest
        while day in self._given:
            day += timedelta(days=1)
        self._reserved.add(day)
        return day


class Platform:
    """A running gateway and services: HTTP helpers, tokens, and read access to the stores."""

    def __init__(self, url: str, config: dict[str, Any], runner: ServiceRunner, mongo: pymongo.MongoClient) -> None:
        self.url = url
        self.config = config
        self.runner = runner
        self.mongo = mongo
        self.http = requests.Session()
        self.times = VisitTimes()
        self._nurse_numbers = itertools.count(1)
        self._cleared: set[str] = set()

    # HTTP

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return self.http.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    # stores

    def db(self, service: str) -> Any:
        return self.mongo[self.config["DATABASE_PREFIX"] + service]

    # data, made through the public API

    def register(self, cleared: bool = False, **overrides: Any) -> str:
        """A new patient; ``cleared``: also screened, consented and approved, so they may book infusions."""
        response = self.post("/v1/patients", json=registration(**overrides))
        assert response.status_code == 201, response.text
        patient_id = response.json()["id"]
        if cleared:
            self.clear(patient_id)
        return patient_id

    def add_nurse(self, states: tuple[str, ...] = ("CO",), nurse_id: str | None = None, **record: Any) -> str:
        """A nurse through ``PUT /v1/nurses/{id}``: by default based in Denver, working every day 07:00-20:00."""
        nurse_id = nurse_id or f"nur_t{next(self._nurse_numbers)}_{uuid.uuid4().hex[:6]}"
        response = self.put(f"/v1/nurses/{nurse_id}", headers=bearer("admin", "ops-setup"),
                            json=nurse_record(f"Nurse {nurse_id}", states, **record))
        assert response.status_code == 200, response.text
        return nurse_id

    def clear(self, patient_id: str) -> dict[str, Any]:
        """Take a registered patient to ``cleared`` through the public API (screening, consent, an admin's
        approval): what booking an infusion needs. Returns the approved review."""
        review = clear_over_http(self.url, patient_id, bearer("patient", patient_id), bearer("admin", "ops-clear"),
                                 session=self.http)
        self._cleared.add(patient_id)
        return review

    def book(self, patient_id: str, start_at: str | None = None, **extra: Any) -> dict[str, Any]:
        """Book an infusion (clearing the patient first if this platform has not yet)."""
        if patient_id not in self._cleared:
            self.clear(patient_id)
        response = self.post("/v1/appointments", headers=bearer("patient", patient_id),
                             json={"patient_id": patient_id, "visit_type": "iv-mood",
                                   "start_at": start_at or self.times.next(), **extra})
        assert response.status_code == 201, response.text
        return response.json()

    def invoice_of(self, appointment_id: str) -> dict[str, Any]:
        """The invoice billing makes from ``appointment.booked`` (asynchronously: waited for)."""

        def found() -> dict[str, Any] | None:
            items = self.get("/v1/invoices", headers=bearer("finance", "fin-setup"),
                             params={"appointment_id": appointment_id}).json()["items"]
            return items[0] if items else None

        return wait_for(found, timeout=20, interval=0.1)


def start_runner(config: dict[str, Any], *service_classes: type) -> ServiceRunner:
    runner = ServiceRunner(config)
    for service_cls in service_classes:
        runner.add_service(service_cls)
    runner.start()
    return runner


def stop_runner(runner: ServiceRunner) -> None:
    try:
        with eventlet.Timeout(20):
            runner.stop()
    except BaseException:  # a stuck worker must not keep the suite waiting
        runner.kill()


def as_json(response: requests.Response) -> str:
    """A response's body, for assertion messages."""
    try:
        return json.dumps(response.json())
    except ValueError:
        return response.text[:500]
