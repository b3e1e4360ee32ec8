"""``make run``: the whole platform on loopback, seeded with demo data, until Ctrl-C.

Starts the document store (mongoeco with its SQLite engine under ``.data/``, unless ``MONGO_URI`` points
at a MongoDB already), the four services and the gateway as separate ``nameko run`` processes, waits until
``/ready`` answers, seeds a few nurses and one demo patient through the public API, writes
``.data/demo.env`` (ids and tokens for the README's curl example) and supervises: Ctrl-C, or any process
dying, stops every process it started. RabbitMQ is started beforehand by ``deploy/ensure_rabbitmq.sh``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
LOGS = DATA / "logs"
VENV_BIN = Path(sys.executable).parent
SERVICES = {"intake": "IntakeService", "scheduling": "SchedulingService", "billing": "BillingService",
            "notifications": "NotificationsService"}
GATEWAY_ADDRESS = os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000")
GATEWAY = f"http://{GATEWAY_ADDRESS}"
MONGO_PORT = int(os.environ.get("MONGO_PORT", "27017"))

DEMO_NURSES = {
    "nur_avery": {"name": "Avery Chen, RN", "licensed_states": ["CO", "AZ", "NV"]},
    "nur_blake": {"name": "Blake Ortiz, RN", "licensed_states": ["CO", "TX"]},
    "nur_casey": {"name": "Casey Morgan, RN", "licensed_states": ["CA", "WA"]},
}
DEMO_PATIENT = {
    "first_name": "Dana", "last_name": "Rivera", "email": "dana.rivera@example.com", "phone": "+13035550142",
    "date_of_birth": "1987-06-15",
    "address": {"line1": "1600 Glenarm Pl", "city": "Denver", "state": "CO", "postal_code": "80202"},
    "time_zone": "America/Denver", "sms_opt_in": True,
}


class Platform:
    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env.setdefault("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/")

    def start_store(self) -> None:
        if os.environ.get("MONGO_URI"):
            say(f"store: using MONGO_URI={os.environ['MONGO_URI']}")
            return
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy" / "mongo_server.py"), "--port", str(MONGO_PORT),
             "--path", str(DATA / "mongo.sqlite3")],
            stdout=subprocess.PIPE, stderr=open(LOGS / "store.log", "a"), text=True, start_new_session=True)
        line = process.stdout.readline().strip()
        if not line.startswith("ready "):
            raise SystemExit(f"the store did not start (see {LOGS / 'store.log'}): {line!r}")
        self.processes["store"] = process
        self.env["MONGO_URI"] = line.split(" ", 1)[1]
        say(f"store: mongoeco on {self.env['MONGO_URI']} (data in .data/mongo.sqlite3)")

    def start_service(self, name: str, module: str, config: Path) -> None:
        log_file = open(LOGS / f"{name}.log", "a")
        self.processes[name] = subprocess.Popen(
            [str(VENV_BIN / "nameko"), "run", "--config", str(config), module], cwd=ROOT, env=self.env,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        say(f"{name}: started (logs in .data/logs/{name}.log)")

    def wait_until_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if requests.get(f"{GATEWAY}/ready", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise SystemExit("the platform did not become ready in time; see .data/logs/")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} stopped (exit {process.returncode}); see .data/logs/{name}.log")

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, process in reversed(list(self.processes.items())):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name}: did not stop in time, killing it")
                process.kill()
                process.wait()
        say("stopped")


def token(role: str, subject: str) -> str:
    minted = subprocess.run([str(VENV_BIN / "infusion"), "token", "--role", role, "--sub", subject,
                             "--ttl", str(12 * 3600)], check=True, capture_output=True, text=True)
    return minted.stdout.strip()


def seed() -> dict[str, str]:
    """Demo nurses and one demo patient, through the public API (safe to repeat)."""
    admin = {"Authorization": f"Bearer {token('admin', 'demo-admin')}"}
    for nurse_id, nurse in DEMO_NURSES.items():
        requests.put(f"{GATEWAY}/v1/nurses/{nurse_id}", json=nurse, headers=admin, timeout=15).raise_for_status()
    demo_file = DATA / "demo.json"
    demo = json.loads(demo_file.read_text()) if demo_file.exists() else {}
    if not demo.get("patient_id"):
        registered = requests.post(f"{GATEWAY}/v1/patients", json=DEMO_PATIENT, timeout=15,
                                   headers={"Idempotency-Key": "demo-patient"})
        registered.raise_for_status()
        demo = {"patient_id": registered.json()["id"]}
        demo_file.write_text(json.dumps(demo))
    patient_id = demo["patient_id"]
    (DATA / "demo.env").write_text(
        f"export GATEWAY={GATEWAY}\nexport PATIENT_ID={patient_id}\n"
        f"export PATIENT_TOKEN={token('patient', patient_id)}\nexport ADMIN_TOKEN={admin['Authorization'][7:]}\n")
    return demo


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def main() -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    platform = Platform()
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        platform.start_store()
        for name, service_class in SERVICES.items():
            platform.start_service(name, f"services.{name}.service:{service_class}",
                                   ROOT / "services" / name / "config.yml")
        platform.start_service("gateway", "gateway.service:GatewayService", ROOT / "gateway" / "config.yml")
        platform.wait_until_ready()
        demo = seed()
        say(f"ready: gateway on {GATEWAY} (API docs at {GATEWAY}/docs)")
        say(f"demo patient {demo['patient_id']}; nurses {', '.join(DEMO_NURSES)}")
        say("try the README's example in another terminal:  source .data/demo.env")
        say("Ctrl-C stops everything")
        while not stopping:
            platform.check_alive()
            time.sleep(0.5)
        return 0
    except SystemExit as exc:
        say(str(exc))
        return 1
    finally:
        platform.stop()


if __name__ == "__main__":
    sys.exit(main())
