"""Scheduling on the real broker and store with the neighbours it asks (intake for eligibility, billing for
quotes), each test on a fresh vhost and fresh databases."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from kombu import Connection, Queue
from nameko.events import get_event_exchange
from nameko.testing.utils import get_container

from chassis.testing import wait_for
from services.billing.service import BillingService
from services.intake.service import IntakeService
from services.intake.walkthrough import VISIT_DETAILS, clear_over_rpc
from services.scheduling.service import SchedulingService
from services.scheduling.tests.examples import nurse_record
from services.scheduling.tests.interface.support import DENVER, call


@pytest.fixture
def hold_minutes() -> float:
    """How long a hold lasts (a test overrides it by parametrizing ``hold_minutes``)."""
    return 10


@pytest.fixture
def offer_minutes() -> float:
    """How long a waitlist offer's hold lasts (overridable like ``hold_minutes``)."""
    return 30


@pytest.fixture
def clinic(runner_factory, service_config, hold_minutes, offer_minutes):
    runner = runner_factory({**service_config, "HOLD_MINUTES": hold_minutes, "WAITLIST_OFFER_MINUTES": offer_minutes},
                            IntakeService, SchedulingService, BillingService)
    runner.start()
    return runner


@pytest.fixture
def intake(clinic):
    return get_container(clinic, IntakeService)


@pytest.fixture
def scheduling(clinic):
    return get_container(clinic, SchedulingService)


@pytest.fixture
def appointments(mongo_client, database_prefix):
    return mongo_client[database_prefix + "scheduling"].appointments


@pytest.fixture
def register(intake):
    numbers = itertools.count(1)

    def register_patient(state: str = "CO", time_zone: str = DENVER, date_of_birth: str = "1985-04-02",
                         postal_code: str = "80202") -> str:
        """A registered patient, cleared by intake (screened, consented, approved) as an infusion needs."""
        n = next(numbers)
        patient_id = call(intake, "register_patient", {
            "first_name": f"Patient{n}", "last_name": "Doe", "email": f"patient{n}@example.com",
            "phone": "+13035550100", "date_of_birth": date_of_birth,
            "address": {"line1": f"{n} Main St", "city": "Somewhere", "state": state, "postal_code": postal_code},
            "time_zone": time_zone, **VISIT_DETAILS,
        })["id"]
        clear_over_rpc(lambda method, *args, **kwargs: call(intake, method, *args, **kwargs), patient_id)
        return patient_id

    return register_patient


@pytest.fixture
def add_nurse(scheduling):
    def add(nurse_id: str, *states: str, **record: Any) -> dict[str, Any]:
        return call(scheduling, "add_nurse", {"id": nurse_id, **nurse_record(nurse_id[4:].title(), states, **record)})
    return add


class EventLog:
    """Every event scheduling publishes during a test, read from a queue bound to its exchange."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.events: list[dict[str, Any]] = []

    def of_type(self, event_type: str, count: int) -> list[dict[str, Any]]:
        """The events of a type once ``count`` of them have arrived (waited for), in order."""
        def arrived() -> list[dict[str, Any]] | None:
            while (message := self.queue.get(no_ack=True, accept=["json"])) is not None:
                self.events.append(message.decode())
            found = [event for event in self.events if event["type"] == event_type]
            return found if len(found) >= count else None
        return wait_for(arrived)


@pytest.fixture
def scheduling_events(scheduling, service_config):
    queue = Queue(f"test.scheduling-events-{uuid.uuid4().hex[:8]}",
                  exchange=get_event_exchange("scheduling", service_config), routing_key="#", durable=False,
                  auto_delete=True)
    with Connection(service_config["AMQP_URI"]) as connection:
        bound = queue(connection.default_channel)
        bound.declare()
        yield EventLog(bound)
