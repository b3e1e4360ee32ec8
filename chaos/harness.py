"""The chaos run: the platform as real processes, two of each, under load and faults; then the invariants.

It starts a RabbitMQ node of its own (``deploy/broker_node.py``: faults here disturb nothing else), the store
(mongoeco on its SQLite engine, so a restart keeps the data), two processes of every service and two
gateways. Load workers run the client flows (``chaos.flows``) through the gateways for ``seconds``, while:

- every ``kill_every`` seconds a random service or gateway process is killed with SIGKILL (and restarted);
- one scheduling process carries a test hook (``INFUSION_FAULTS``) that kills it at the instant after an
  appointment insert, now and then: the booking is stored, its answer never sent;
- RabbitMQ is restarted once (``stop_app``/``start_app``), every client connection is closed once, and a
  memory alarm blocks every publisher for a few seconds;
- the store process is restarted once;
- a few poison events (that no handler can ever read) are put in handler queues;
- the SMS provider double answers 503 for a while, and the mail server is down for a few seconds;
- the Stripe stand-in loses the answers of a few charges it made, hangs past billing's timeout on one, and
  fails a few with a 500; it sends every webhook twice, newest first, to both gateways, and again when a
  gateway does not take it.

When the load stops it waits for the platform to settle (outboxes and queues empty), reads the stores and
prints each invariant (``chaos.invariants``) as a figure against its target. The exit status is non-zero
if any invariant is violated.
"""

from __future__ import annotations

import json
import os
import random
import signal
import string
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymongo
import requests
from kombu import Connection, Exchange

from chaos.flows import FLOWS, Client, Journal
from chaos.invariants import INVARIANTS, UNDELIVERED, Figure, Stores, reminders_due
from chassis.clock import isoformat, utcnow
from chassis.dlq import DeadLetter, DeadLetterQueue
from deploy.broker_node import BrokerNode
from deploy.processes import SERVICE_CLASSES, Platform, ProcessExited, default_env
from deploy.run import demo_nurse
from gateway.auth import AuthSettings, mint_token

JWT_SECRET = "chaos-run-secret-0123456789abcdef-0123"
# Two nurses in each state the chaos patients live in, based in the patients' city (chaos.flows.STATES).
CITIES = {"CO": ((39.7491, -104.9946), "America/Denver"), "AZ": ((33.4484, -112.0740), "America/Phoenix"),
          "NV": ((39.5296, -119.8138), "America/Los_Angeles")}
NURSES = {"nur_ada": "CO", "nur_ben": "CO", "nur_cy": "AZ", "nur_dee": "AZ", "nur_eve": "NV", "nur_fay": "NV"}
POISON_QUEUES = ("evt-scheduling-appointment.booked--billing.invoice_booked_appointment",
                 "evt-intake-patient.registered--notifications.remember_contact")
SETTINGS = {
    "RPC_TIMEOUT_SECONDS": "5", "IDEMPOTENCY_LEASE_SECONDS": "8", "OUTBOX_POLL_SECONDS": "0.5",
    "EVENT_RETRY_DELAYS": "[0.5, 1, 2, 4, 8, 15, 30, 30, 30, 30]", "PUBLISH_TIMEOUT_SECONDS": "3",
    "RATE_LIMIT_DEFAULT": "100000/60", "RATE_LIMIT_REGISTER": "100000/3600", "RATE_LIMIT_BOOK": "100000/3600",
    "MONGO_TIMEOUT_MS": "3000", "LOG_LEVEL": "INFO", "JWT_SECRET": JWT_SECRET,
    "QUIET_HOURS": "off", "ON_CALL_EMAIL": "on-call@clinic.example.com", "SMTP_SECURITY": "none",
    "SMS_ACCOUNT_SID": "AC_chaos", "SMS_AUTH_TOKEN": "chaos", "SMS_FROM": "+13035550000",
    "DELIVERY_FIRST_RETRY_SECONDS": "1", "DELIVERY_LONGEST_RETRY_SECONDS": "10", "DELIVERY_MAX_ATTEMPTS": "30",
    "STRIPE_TIMEOUT_SECONDS": "3",
}
#: What the Stripe stand-in is told to do to billing's calls now and then: (kind, times, seconds).
STRIPE_FAULTS = (("lose_answer", 2, 0), ("hang", 1, 5), ("error", 2, 0))


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ProcessSpec:
    service: str
    env: dict[str, str] = field(default_factory=dict)


class ChaosRun:
    def __init__(self, seconds: float, workers: int = 3, kill_every: float = 4.0, settle_seconds: float = 180,
                 work_dir: Path | None = None, seed: int | None = None) -> None:
        self.seconds = seconds
        self.workers = workers
        self.kill_every = kill_every
        self.settle_seconds = settle_seconds
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="chaos-"))
        self.random = random.Random(seed)
        self.node = BrokerNode()
        self.vhost = "chaos_" + "".join(random.choices(string.ascii_lowercase, k=8))
        self.journal = Journal()
        self.poison_injected = 0
        self.faults: list[str] = []
        self.specs: dict[str, ProcessSpec] = {}
        self.paused: set[str] = set()
        self.stopping = threading.Event()
        self.gateways: list[str] = []

    # --- the run -----------------------------------------------------------------------------------------

    def run(self) -> int:
        say(f"starting: {self.seconds:g}s of load, logs in {self.work_dir}")
        self.node.start()
        self.amqp_uri = self.node.fresh_vhost(self.vhost)
        self.platform = Platform({**default_env(), **SETTINGS, "AMQP_URI": self.amqp_uri,
                                  "DATABASE_PREFIX": "chaos_"}, self.work_dir / "logs")
        try:
            self.store_port = free_port()
            self.mongo_uri = self.platform.start_store(self.store_port, self.work_dir / "store.sqlite3")
            self._start_outboxes()
            self._start_processes()
            self._seed()
            figures = self._drive_and_measure()
        finally:
            self.stopping.set()
            self.platform.stop()
            self.node.delete_vhost(self.vhost)
        return self._report(figures)

    def _start_outboxes(self) -> None:
        """The mail server, the SMS provider double (keeping what they receive as files to count) and the Stripe
        stand-in (sending every webhook twice, newest first)."""
        self.mail_port = free_port()
        self._start_mail()
        self.sms_url = self.platform.start_helper("sms", [
            "services.notifications.sms_double", "--port", str(free_port()), "--directory", str(self.work_dir / "sms"),
            "--account-sid", SETTINGS["SMS_ACCOUNT_SID"], "--auth-token", SETTINGS["SMS_AUTH_TOKEN"]])
        self.platform.env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(self.mail_port), SMS_API_BASE=self.sms_url)
        self.stripe_base = self.platform.start_stripe_double(free_port())
        requests.post(f"{self.stripe_base}/_config/double/webhooks", json={"duplicates": 2, "newest_first": True},
                      timeout=5).raise_for_status()

    def _start_mail(self) -> None:
        self.platform.start_helper("mail", ["services.notifications.mail_sink", "--port", str(self.mail_port),
                                            "--directory", str(self.work_dir / "mail")])

    def _start_processes(self) -> None:
        for service in SERVICE_CLASSES:
            self.specs[f"{service}-1"] = ProcessSpec(service)
            self.specs[f"{service}-2"] = ProcessSpec(service)
        # the test hook: this process dies, now and then, at the instant after an appointment insert
        self.specs["scheduling-2"].env["INFUSION_FAULTS"] = "after_insert:appointments:kill@0.3"
        for n in (1, 2):
            address = f"127.0.0.1:{free_port()}"
            self.specs[f"gateway-{n}"] = ProcessSpec("gateway", {"GATEWAY_ADDRESS": address})
            self.gateways.append(f"http://{address}")
        for label, spec in self.specs.items():
            self.platform.start(spec.service, label=label, env=spec.env)
        deadline = time.monotonic() + 120
        while not all(self._ready(gateway) for gateway in self.gateways):
            if time.monotonic() > deadline:
                raise ProcessExited(f"the platform did not become ready; see {self.work_dir / 'logs'}")
            time.sleep(0.5)
        say(f"{len(self.specs)} processes ready ({', '.join(self.specs)})")
        for n, gateway in enumerate(self.gateways, 1):  # Stripe's webhooks reach either gateway
            requests.post(f"{self.stripe_base}/_config/webhooks/gateway-{n}", timeout=5, data={
                "url": f"{gateway}/v1/webhooks/stripe", "secret": self.platform.env["STRIPE_WEBHOOK_SECRET"],
            }).raise_for_status()

    @staticmethod
    def _ready(gateway: str) -> bool:
        try:
            return requests.get(f"{gateway}/ready", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def token(self, role: str, subject: str) -> str:
        return mint_token(AuthSettings(secret=JWT_SECRET), subject, role, ttl_seconds=3 * 3600)

    def _seed(self) -> None:
        client = Client(self.gateways, self.token, deadline=time.monotonic() + 60)
        for nurse_id, state in NURSES.items():
            answer = client.send("PUT", f"/v1/nurses/{nurse_id}", demo_nurse(nurse_id, [state], *CITIES[state], 40),
                                 headers=client.token("admin", "chaos"), idempotency_key="seed")
            if answer is None or answer.status_code != 200:
                raise ProcessExited(f"could not seed nurse {nurse_id}: {answer and answer.text}")

    def _drive_and_measure(self) -> list[Figure]:
        ends = time.monotonic() + self.seconds
        threads = [threading.Thread(target=self._load, args=(ends,), name=f"load-{n}", daemon=True)
                   for n in range(self.workers)]
        threads += [threading.Thread(target=self._supervise, name="supervisor", daemon=True),
                    threading.Thread(target=self._kill_now_and_then, args=(ends,), name="killer", daemon=True),
                    threading.Thread(target=self._one_off_faults, args=(ends,), name="faults", daemon=True)]
        for thread in threads:
            thread.start()
        for thread in threads[: self.workers]:
            thread.join()
        say(f"load stopped: {sum(len(v) for v in self.journal.accepted.values())} requests accepted; settling")
        self.paused.clear()
        self._settle()
        self.stopping.set()
        client = pymongo.MongoClient(self.mongo_uri, tz_aware=True)
        try:
            stores = Stores(*(client[f"chaos_{name}"] for name in ("intake", "scheduling", "billing",
                                                                   "notifications")))
            figures: list[Figure] = []
            for invariant in INVARIANTS:
                measured = invariant(stores, self.journal, self)
                figures.extend(measured if isinstance(measured, list) else [measured])
            return figures
        finally:
            client.close()

    # --- load and faults -------------------------------------------------------------------------------

    def _load(self, ends: float) -> None:
        client = Client(self.gateways, self.token, deadline=ends, stripe_base=self.stripe_base)
        while time.monotonic() < ends:
            flow = self.random.choice(FLOWS)
            try:
                flow(client, self.journal)
            except Exception as exc:  # a flow's own bug must not stop the run, but it is reported
                self.journal.count("unsettled", f"{flow.__name__} raised {type(exc).__name__}")

    def _supervise(self) -> None:
        """Restart any process that died (killed, or by its own test hook), unless a fault holds it down."""
        while not self.stopping.is_set():
            for label, spec in self.specs.items():
                process = self.platform.processes.get(label)
                if label in self.paused or (process is not None and process.poll() is None):
                    continue
                if process is not None:
                    self.platform.processes.pop(label, None)
                self.platform.start(spec.service, label=label, env=spec.env)
            time.sleep(0.5)

    def _kill_now_and_then(self, ends: float) -> None:
        while time.monotonic() < ends and not self.stopping.is_set():
            time.sleep(self.kill_every)
            label = self.random.choice(sorted(self.specs))
            process = self.platform.processes.get(label)
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                self.faults.append(f"SIGKILL {label}")

    def _one_off_faults(self, ends: float) -> None:
        start = ends - self.seconds
        plan = [(0.15, self._poison), (0.2, self._stripe_failing), (0.25, self._restart_broker),
                (0.35, self._sms_provider_failing), (0.4, self._close_connections), (0.5, self._poison),
                (0.55, self._memory_alarm), (0.6, self._stripe_failing), (0.65, self._mail_server_down),
                (0.7, self._restart_store), (0.8, self._poison)]
        for fraction, fault in plan:
            while time.monotonic() < start + fraction * self.seconds:
                if self.stopping.is_set():
                    return
                time.sleep(0.2)
            try:
                fault()
            except Exception as exc:
                self.faults.append(f"{fault.__name__} failed: {exc}")
                say(f"fault {fault.__name__} failed: {exc}")

    def _restart_broker(self) -> None:
        say("fault: restarting RabbitMQ (stop_app / start_app)")
        self.node.restart_app()
        self.faults.append("RabbitMQ restarted")

    def _close_connections(self) -> None:
        say("fault: closing every client connection")
        self.node.close_all_connections()
        self.faults.append("every connection closed")

    def _memory_alarm(self) -> None:
        say("fault: memory alarm for 4 s")
        self.node.memory_alarm(True)
        try:
            time.sleep(4)
        finally:
            self.node.memory_alarm(False)
        self.faults.append("memory alarm for 4 s")

    def _restart_store(self) -> None:
        say("fault: restarting the store")
        store = self.platform.processes.pop("store")
        store.kill()
        store.wait()
        time.sleep(1)
        self.platform.start_store(self.store_port, self.work_dir / "store.sqlite3")
        self.faults.append("store restarted")

    def _sms_provider_failing(self) -> None:
        say("fault: the SMS provider answers 503 to the next 15 texts")
        requests.post(f"{self.sms_url}/control", json={"fail_next": 15}, timeout=5).raise_for_status()
        self.faults.append("SMS provider failing for 15 texts")

    def _mail_server_down(self) -> None:
        say("fault: the mail server is down for 5 s")
        mail = self.platform.processes.pop("mail")
        mail.kill()
        mail.wait()
        time.sleep(5)
        self._start_mail()
        self.faults.append("mail server down for 5 s")

    def _stripe_failing(self) -> None:
        say("fault: Stripe loses the answers of charges it made, hangs past the timeout, answers 500")
        for kind, times, seconds in STRIPE_FAULTS:
            requests.post(f"{self.stripe_base}/_config/double/faults", timeout=5, json={
                "method": "POST", "path": "/v1/payment_intents", "kind": kind, "times": times, "seconds": seconds,
            }).raise_for_status()
        self.faults.append("Stripe losing answers, hanging and failing")

    def _poison(self) -> None:
        """An event no handler can ever read (a version nobody knows), straight into a handler's queue."""
        queue = POISON_QUEUES[self.poison_injected % len(POISON_QUEUES)]
        event = {"event_id": f"evt_poison_{self.poison_injected}", "type": "unknown.poison", "version": 99,
                 "occurred_at": isoformat(utcnow()), "correlation_id": None, "producer": "chaos", "payload": {}}
        with Connection(self.amqp_uri, transport_options={"confirm_publish": True}) as connection:
            connection.Producer().publish(event, exchange=Exchange(""), routing_key=queue, serializer="json",
                                          delivery_mode=2, mandatory=True, retry=True)
        self.poison_injected += 1
        self.faults.append(f"poison event into {queue}")

    # --- settling and the report ----------------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        return DeadLetterQueue(self.amqp_uri).list()

    def _busy(self) -> int:
        """Events still on their way: in outboxes, or in any queue but the dead letters."""
        queues = requests.get(f"{self.node.management_url}/api/queues/{self.vhost}", auth=("guest", "guest"),
                              timeout=10).json()
        waiting = sum(q.get("messages", 0) for q in queues if q["name"] != "infusion.dead-letters"
                      and not q["name"].startswith(("rpc-", "rpc.reply-")))  # replies to dead callers stay
        client = pymongo.MongoClient(self.mongo_uri, serverSelectionTimeoutMS=3000)
        try:
            for service in SERVICE_CLASSES:
                db = client[f"chaos_{service}"]
                for name in db.list_collection_names():
                    waiting += db[name].count_documents({"outbox.0": {"$exists": True}})
            waiting += client["chaos_notifications"].messages.count_documents(UNDELIVERED)
            waiting += client["chaos_notifications"].reminders.count_documents(reminders_due())
        finally:
            client.close()
        return waiting

    def _settle(self) -> None:
        deadline = time.monotonic() + self.settle_seconds
        quiet = 0
        while time.monotonic() < deadline and quiet < 3:
            try:
                quiet = quiet + 1 if self._busy() == 0 else 0
            except Exception:
                quiet = 0
            time.sleep(1)
        say("settled" if quiet >= 3 else f"did not settle within {self.settle_seconds:g}s")

    def _report(self, figures: list[Figure]) -> int:
        width = max(len(f.name) for f in figures)
        print("\nfaults injected:", ", ".join(sorted(set(self.faults), key=self.faults.index)))
        print(f"kills: {sum(1 for f in self.faults if f.startswith('SIGKILL'))}; "
              f"accepted: { {k: len(v) for k, v in self.journal.accepted.items()} }; "
              f"refused: {self.journal.refused}; client gave up: {self.journal.unsettled}\n")
        for figure in figures:
            mark = "ok  " if figure.holds else "FAIL"
            print(f"{mark} {figure.name:<{width}}  {figure.measured:>6}  (target {figure.target})  {figure.detail}")
        violated = [f for f in figures if not f.holds]
        result = {"seconds": self.seconds, "faults": self.faults, "figures": [f.__dict__ for f in figures],
                  "accepted": {k: len(v) for k, v in self.journal.accepted.items()},
                  "refused": self.journal.refused, "unsettled": self.journal.unsettled}
        (self.work_dir / "chaos.json").write_text(json.dumps(result, indent=2, default=str))
        print(f"\n{'every invariant holds' if not violated else f'{len(violated)} invariant(s) violated'}"
              f" (figures in {self.work_dir / 'chaos.json'})")
        return 1 if violated else 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS", 600)))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("CHAOS_WORKERS", 3)))
    parser.add_argument("--kill-every", type=float, default=float(os.environ.get("CHAOS_KILL_EVERY", 4)))
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    return ChaosRun(args.seconds, args.workers, args.kill_every, work_dir=args.work_dir, seed=args.seed).run()


if __name__ == "__main__":
    sys.exit(main())
