"""Faults a real deployment meets, injected into the real processes.

- A scheduling process dies right after it stored a booking, before it could answer: the broker hands the
  request to another scheduling process, which finds the booking the first one made (the appointment id
  derives from the client operation) instead of booking the next nurse. One appointment, one invoice.
- The broker raises a memory alarm and blocks every publisher: a request through the gateway still ends
  within its RPC deadline, as a 504 with Retry-After, instead of hanging. This one runs on a broker node of
  its own (``deploy/broker_node.py``), so the alarm disturbs nothing else on the machine.
"""

from __future__ import annotations

import os
import random
import string
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import eventlet
import pytest
import requests
from kombu import Exchange, Queue

from chassis.amqp import ConfirmedPublisher, PublishFailed
from chassis.testing import fresh_databases, wait_for
from deploy.broker_node import BrokerNode
from services.intake.walkthrough import clear_over_http
from services.scheduling.tests.examples import nurse_record
from tests.conftest import JWT_SECRET, EndToEndPlatform, free_port
from tests.test_patient_journey import DANA


def _platform(amqp_uri: str, mongo_uri: str, prefix: str, log_dir, **settings: str) -> EndToEndPlatform:
    env = {**os.environ, "AMQP_URI": amqp_uri, "MONGO_URI": mongo_uri, "DATABASE_PREFIX": prefix,
           "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}", "JWT_SECRET": JWT_SECRET, "OUTBOX_POLL_SECONDS": "0.3",
           "EVENT_RETRY_DELAYS": "[0.2, 0.5]", "PYTHONUNBUFFERED": "1", **settings}
    return EndToEndPlatform(env, log_dir)


def _a_visit_to_book(platform: EndToEndPlatform, state: str) -> tuple[str, dict]:
    for nurse in ("nur_first", "nur_second"):  # two nurses: a second booking would get the second one
        requests.put(f"{platform.url}/v1/nurses/{nurse}", headers=platform.token("admin", "ops"), timeout=30,
                     json=nurse_record(nurse, [state])).raise_for_status()
    patient = requests.post(f"{platform.url}/v1/patients", timeout=30,
                            json={**DANA, "email": f"{nurse}-{time.time_ns()}@example.com"}).json()["id"]
    clear_over_http(platform.url, patient, platform.token("patient", patient), platform.token("admin", "ops"))
    start_at = (datetime.now(UTC) + timedelta(days=8)).replace(hour=17, minute=0, second=0, microsecond=0)
    return patient, {"patient_id": patient, "visit_type": "iv-mood", "start_at": start_at.isoformat()}


def test_a_scheduling_process_killed_right_after_its_insert_leaves_one_appointment_and_one_invoice(
        vhost, mongo_uri, tmp_path):
    with fresh_databases(mongo_uri, tag="k") as prefix:
        platform = _platform(f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}", mongo_uri, prefix, tmp_path,
                             RPC_TIMEOUT_SECONDS="30", IDEMPOTENCY_LEASE_SECONDS="60")
        for name in ("intake", "billing", "notifications", "gateway"):
            platform.start(name)
        platform.start("scheduling", label="scheduling-doomed",
                       env={"INFUSION_FAULTS": "after_insert:appointments:kill"})
        try:
            wait_for(lambda: _answers(platform), timeout=90, interval=0.3)
            patient, booking = _a_visit_to_book(platform, "CO")
            headers = {**platform.token("patient", patient), "Idempotency-Key": "book-once"}
            with ThreadPoolExecutor(1) as pool:
                answer = pool.submit(requests.post, f"{platform.url}/v1/appointments", json=booking,
                                     headers=headers, timeout=90)
                doomed = platform.processes["scheduling-doomed"]
                wait_for(lambda: doomed.poll() is not None, timeout=60)  # it stored the booking, then died
                platform.processes.pop("scheduling-doomed")
                platform.start("scheduling", label="scheduling-survivor")  # receives the redelivered request
                response = answer.result()

            assert response.status_code == 201, response.text
            finance = platform.token("finance", "fin")
            invoices = wait_for(lambda: requests.get(f"{platform.url}/v1/invoices", headers=finance, timeout=30,
                                                     params={"patient_id": patient}).json()["items"], timeout=60)
            appointments = requests.get(f"{platform.url}/v1/appointments", params={"patient_id": patient},
                                        headers=platform.token("admin", "ops"), timeout=30).json()["items"]
            assert [a["id"] for a in appointments] == [response.json()["id"]]
            assert appointments[0]["nurse_id"] == "nur_first"  # not the next nurse: the first booking stands
            time.sleep(1)  # a second invoice, if any, would have been written by now
            assert len(requests.get(f"{platform.url}/v1/invoices", headers=finance, timeout=30,
                                    params={"patient_id": patient}).json()["items"]) == len(invoices) == 1
        finally:
            platform.stop()


def _answers(platform: EndToEndPlatform) -> bool:
    try:
        return requests.get(f"{platform.url}/ready", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def broker_node():
    node = BrokerNode()
    node.start()
    yield node


def test_under_a_broker_memory_alarm_a_request_ends_at_its_deadline_as_a_504(broker_node, mongo_uri, tmp_path):
    vhost = "alarm_" + "".join(random.choices(string.ascii_lowercase, k=8))
    amqp_uri = broker_node.fresh_vhost(vhost)
    with fresh_databases(mongo_uri, tag="a") as prefix:
        platform = _platform(amqp_uri, mongo_uri, prefix, tmp_path, RPC_TIMEOUT_SECONDS="1")
        platform.start_all()
        try:
            platform.wait_until_ready()
            admin = platform.token("admin", "ops")
            assert requests.get(f"{platform.url}/v1/nurses", headers=admin, timeout=10).status_code == 200

            broker_node.memory_alarm(True)
            try:
                started = time.monotonic()
                blocked = requests.get(f"{platform.url}/v1/nurses", headers=admin, timeout=2)  # never waits longer
                print(f"answered in {time.monotonic() - started:.2f}s under the alarm")
            finally:
                broker_node.memory_alarm(False)

            assert blocked.status_code == 504, blocked.text
            assert blocked.json()["code"] == "service_timeout" and blocked.headers["Retry-After"]
            assert wait_for(lambda: requests.get(f"{platform.url}/v1/nurses", headers=admin,
                                                 timeout=10).status_code == 200, timeout=30)
        finally:
            platform.stop()
            broker_node.delete_vhost(vhost)


def test_under_a_memory_alarm_a_relay_publish_fails_in_bounded_time_and_works_again_after(broker_node):
    vhost = "relay_" + "".join(random.choices(string.ascii_lowercase, k=8))
    publisher = ConfirmedPublisher(broker_node.fresh_vhost(vhost), timeout=1)
    queue = Queue("parcels", exchange=Exchange(""), routing_key="parcels", durable=True,
                  queue_arguments={"x-queue-type": "quorum"})
    try:
        publisher.publish({"n": 1}, exchange="", routing_key="parcels", declare=[queue])
        broker_node.memory_alarm(True)
        try:
            with eventlet.Timeout(5):  # a hang fails the test; the publisher gives up after its own 1 s
                with pytest.raises(PublishFailed):
                    publisher.publish({"n": 2}, exchange="", routing_key="parcels")
        finally:
            broker_node.memory_alarm(False)
        publisher.publish({"n": 3}, exchange="", routing_key="parcels")  # a fresh connection, once unblocked
    finally:
        publisher.close()
        broker_node.delete_vhost(vhost)
