"""The Stripe double as the compose file and the staging overlay start it: told at start-up where the gateway's
webhook route is and the secret the gateway checks with (a mounted Secret file in staging), it sends its events
there, signed so that the gateway's own check passes, with nothing registered afterwards. Runs the double on
loopback only."""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from deploy.tests.manifests import ROOT
from gateway.signatures import BadSignature, verify_signature
from tests.conftest import free_port

SECRET = "whsec_deploy_check"


@pytest.fixture
def gateway_route():
    """A stand-in for the gateway's POST /v1/webhooks/stripe: what it receives (path, signature header, body)."""
    received: queue.Queue = queue.Queue()

    class Route(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((self.path, self.headers.get("Stripe-Signature"), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Route)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/webhooks/stripe", received
    finally:
        server.shutdown()
        server.server_close()


def start_double(arguments: list[str], tmp_path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(tmp_path / "stripe-double.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "services.billing.stripe_double", "--port", str(port),
                                *arguments], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"the Stripe double did not start: {(tmp_path / 'stripe-double.log').read_text()}")


def test_the_double_sends_its_events_signed_with_the_secret_file_to_the_url_given_at_start_up(gateway_route,
                                                                                               tmp_path):
    url, received = gateway_route
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")  # as a mounted Secret may hold it, with a final newline
    process, base = start_double(["--webhook-url", url, "--webhook-secret-file", str(secret_file)], tmp_path)
    try:
        customer = requests.post(f"{base}/v1/customers", data={"email": "patient@example.org"}, timeout=10,
                                 headers={"Authorization": "Bearer sk_test_deploy_check"})
        assert customer.status_code == 200, customer.text
        path, signature, body = received.get(timeout=15)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert path == "/v1/webhooks/stripe"
    assert b'"customer.created"' in body
    verify_signature(body, signature, SECRET)  # the gateway's own check
    with pytest.raises(BadSignature):
        verify_signature(body, signature, "whsec_another")


@pytest.mark.parametrize("arguments", [
    ["--webhook-url", "http://gateway:8000/v1/webhooks/stripe"],  # no secret: nothing could verify
    ["--webhook-secret", SECRET],  # a secret for no target
    ["--webhook-url", "gateway:8000/v1/webhooks/stripe", "--webhook-secret", SECRET],  # not an address
    ["--webhook-url", "http://gateway:8000/v1/webhooks/stripe", "--webhook-secret-file", "/nonexistent/secret"],
])
def test_the_double_refuses_to_start_with_a_webhook_target_it_could_not_sign_for(arguments):
    result = subprocess.run([sys.executable, "-m", "services.billing.stripe_double", "--port", str(free_port()),
                             *arguments], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
