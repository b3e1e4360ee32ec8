"""The platform's processes: the store (unless ``MONGO_URI`` is given), the four services and the gateway,
each a separate ``nameko run``, as ``make run``, the end-to-end tests and the benchmarks start them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SERVICE_CLASSES = {"intake": "IntakeService", "scheduling": "SchedulingService", "billing": "BillingService",
                   "notifications": "NotificationsService"}
PROCESSES = (*SERVICE_CLASSES, "gateway")


def nameko_target(name: str) -> tuple[str, Path]:
    """The ``module:Class`` and config file of one of the platform's processes."""
    if name == "gateway":
        return "gateway.service:GatewayService", ROOT / "gateway" / "config.yml"
    return f"services.{name}.service:{SERVICE_CLASSES[name]}", ROOT / "services" / name / "config.yml"


class ProcessExited(RuntimeError):
    pass


class Platform:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**env, "PYTHONUNBUFFERED": "1"}
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"http://{self.env.get('GATEWAY_ADDRESS', '127.0.0.1:8000')}"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start_store(self, port: int, path: Path | None) -> str:
        """Start mongoeco on ``port`` (``path``: SQLite file; None: in memory) and point MONGO_URI at it."""
        command = [sys.executable, str(ROOT / "deploy" / "mongo_server.py"), "--port", str(port)]
        command += ["--path", str(path)] if path else ["--memory"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(self.log_path("store"), "a"),
                                   text=True, start_new_session=True)
        line = process.stdout.readline().strip()
        if not line.startswith("ready "):
            process.kill()
            raise ProcessExited(f"the store did not start (see {self.log_path('store')}): {line!r}")
        self.processes["store"] = process
        self.env["MONGO_URI"] = line.split(" ", 1)[1]
        return self.env["MONGO_URI"]

    def start(self, name: str, label: str | None = None, env: dict[str, str] | None = None) -> None:
        """Start one process of ``name``; ``label`` names another process of the same service; ``env`` adds
        settings for this process only (e.g. a fault to inject)."""
        target, config = nameko_target(name)
        label = label or name
        self.processes[label] = subprocess.Popen(
            [str(BIN / "nameko"), "run", "--config", str(config), target], cwd=ROOT, env={**self.env, **(env or {})},
            stdout=open(self.log_path(label), "a"), stderr=subprocess.STDOUT, start_new_session=True)

    def start_all(self) -> None:
        for name in PROCESSES:
            self.start(name)

    def kill(self, name: str) -> None:
        """Stop one process without warning, as if its machine died."""
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ProcessExited(f"{name} stopped (exit {process.returncode}); see {self.log_path(name)}")

    def wait_until_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if requests.get(f"{self.url}/ready", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise ProcessExited(f"the platform did not become ready within {timeout:g}s; see {self.log_dir}")

    def stop(self, grace_seconds: float = 15) -> None:
        """SIGTERM every process (gateway first, store last), then SIGKILL what is still running."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for process in reversed(list(self.processes.values())):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def rss_megabytes(self) -> dict[str, float]:
        """Resident memory of each process, from /proc (Linux)."""
        sizes = {}
        for name, process in self.processes.items():
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                continue
            kilobytes = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            sizes[name] = kilobytes / 1024
        return sizes


def default_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/")
    return env
