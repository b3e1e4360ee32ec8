"""A RabbitMQ node of its own, for the tests and the chaos run that stop, restart or alarm the broker.

The machine's RabbitMQ (5672) is shared by everything else; faults are injected into a second node started
from the same installation with its own name, ports and data directory (``chaos@localhost`` on 5673, its
management API on 15673), so raising a memory alarm or restarting the broker disturbs nothing else.

    node = BrokerNode(); node.start()        # idempotent: reuses the node if it already answers
    node.amqp_uri                            # pyamqp://guest:guest@127.0.0.1:5673/
    node.memory_alarm(True); node.memory_alarm(False)
    node.restart_app(); node.close_all_connections(); node.stop()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

RABBITMQ_USER = "rabbitmq"


class BrokerNode:
    def __init__(self, name: str = "chaos", amqp_port: int = 5673, management_port: int = 15673,
                 dist_port: int = 25673, base: Path | None = None) -> None:
        self.name = f"{name}@localhost"
        self.amqp_port = amqp_port
        self.management_port = management_port
        self.dist_port = dist_port
        self.base = base or Path(f"/tmp/infusion-broker-{name}")

    @property
    def amqp_uri(self) -> str:
        return f"pyamqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.amqp_port), timeout=1):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 120) -> None:
        if self.answers() and self._ctl("status").returncode == 0:
            return
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.port = {self.management_port}\nmanagement.tcp.ip = 127.0.0.1\n"
            "loopback_users = none\n")
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        if shutil.which("chown"):
            subprocess.run(["chown", "-R", f"{RABBITMQ_USER}:{RABBITMQ_USER}", str(self.base)], check=False)
        env = {**os.environ, "RABBITMQ_NODENAME": self.name, "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
               "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
               "RABBITMQ_LOG_BASE": str(self.base / "log"), "RABBITMQ_PID_FILE": str(self.base / "pid"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins")}
        subprocess.run(["rabbitmq-server", "-detached"], env=env, check=False, capture_output=True)
        self.wait_until_ready(timeout)

    def wait_until_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                try:
                    if requests.get(f"{self.management_url}/api/overview", auth=("guest", "guest"),
                                    timeout=2).ok:
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.5)
        raise RuntimeError(f"broker node {self.name} did not start; see {self.base / 'log'}")

    def stop(self) -> None:
        self._ctl("stop")

    def memory_alarm(self, on: bool) -> None:
        """Raise (every publisher is blocked) or clear a memory alarm."""
        watermark = "0.000001" if on else "0.4"
        self._ctl("set_vm_memory_high_watermark", watermark, check=True)

    def restart_app(self) -> None:
        """``stop_app`` then ``start_app``: every connection drops; durable queues and messages survive."""
        self._ctl("stop_app", check=True)
        self._ctl("start_app", check=True)
        self.wait_until_ready()

    def close_all_connections(self) -> None:
        self._ctl("close_all_connections", "chaos: closing every client connection", check=True)

    def fresh_vhost(self, name: str) -> str:
        """A new vhost for one run; its AMQP URI."""
        auth = ("guest", "guest")
        requests.put(f"{self.management_url}/api/vhosts/{name}", auth=auth, timeout=10).raise_for_status()
        requests.put(f"{self.management_url}/api/permissions/{name}/guest", auth=auth, timeout=10,
                     json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
        return f"{self.amqp_uri}{name}"

    def delete_vhost(self, name: str) -> None:
        requests.delete(f"{self.management_url}/api/vhosts/{name}", auth=("guest", "guest"), timeout=10)

    def _ctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run(["rabbitmqctl", "-n", self.name, "-q", *args], capture_output=True, text=True,
                                timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
        return result
