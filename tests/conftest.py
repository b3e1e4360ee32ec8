"""End-to-end fixtures: the real processes (``nameko run`` per service and the gateway), on the real
broker (a fresh vhost) and the real store (fresh databases), driven over HTTP."""

from __future__ import annotations

import os
import random
import socket
import string
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from gateway.auth import AuthSettings, mint_token

ROOT = Path(__file__).resolve().parent.parent
NAMEKO = Path(sys.executable).parent / "nameko"
SERVICE_CLASSES = {"intake": "IntakeService", "scheduling": "SchedulingService", "billing": "BillingService",
                   "notifications": "NotificationsService"}
SERVICES = tuple(SERVICE_CLASSES)
JWT_SECRET = "end-to-end-test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Platform:
    """The platform's five processes, started and stopped like ``make run`` does."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.url = f"http://{env['GATEWAY_ADDRESS']}"
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        module, config = (("gateway.service:GatewayService", ROOT / "gateway" / "config.yml") if name == "gateway"
                          else (f"services.{name}.service:{SERVICE_CLASSES[name]}",
                                ROOT / "services" / name / "config.yml"))
        self.processes[name] = subprocess.Popen(
            [str(NAMEKO), "run", "--config", str(config), module], cwd=ROOT, env=self.env,
            stdout=open(self.log_path(name), "a"), stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def wait_until_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited: {self.log_path(name).read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/ready", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("the platform did not become ready")

    def token(self, role: str, subject: str) -> dict[str, str]:
        settings = AuthSettings(secret=JWT_SECRET)
        return {"Authorization": f"Bearer {mint_token(settings, subject, role, ttl_seconds=3600)}"}


@pytest.fixture(scope="module")
def vhost(rabbit_manager, request):
    name = "e2e_" + "".join(random.choices(string.ascii_lowercase, k=10))
    rabbit_manager.create_vhost(name)
    rabbit_manager.set_vhost_permissions(name, "guest", ".*", ".*", ".*")
    yield name
    rabbit_manager.delete_vhost(name)


@pytest.fixture(scope="module")
def platform(vhost, mongo_uri, tmp_path_factory):
    prefix = f"e{uuid.uuid4().hex[:10]}_"
    env = {**os.environ, "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}",
           "MONGO_URI": mongo_uri, "DATABASE_PREFIX": prefix, "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}",
           "JWT_SECRET": JWT_SECRET, "EVENT_RETRY_DELAYS": "[0.2, 0.5]", "OUTBOX_POLL_SECONDS": "0.3",
           "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"}
    platform = Platform(env, tmp_path_factory.mktemp("logs"))
    for name in (*SERVICES, "gateway"):
        platform.start(name)
    try:
        platform.wait_until_ready()
        yield platform
    finally:
        platform.stop()
