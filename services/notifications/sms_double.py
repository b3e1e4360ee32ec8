"""A stand-in for the SMS provider (Twilio's Messages API shape), for development, the demo and the tests.
It keeps every text it accepts as a JSON file in a folder, and can be told to fail, then recover.

    python -m services.notifications.sms_double --port 0 --directory .data/sms

prints ``ready http://HOST:PORT`` once it listens.

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (basic auth ``AccountSid:AuthToken`` when
  ``--account-sid`` is given; form fields ``To``, ``From``, ``Body``): ``201`` with the message's ``sid``;
  a ``To`` that is not an E.164 number is refused with ``400`` (code 21211), as the provider does.
- ``POST /control`` with ``{"fail_next": N}``: the next N sends answer ``503``; then it recovers.
- ``GET /messages``: the texts kept so far, oldest first.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class ProviderDouble(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], directory: Path, account_sid: str | None = None,
                 auth_token: str | None = None) -> None:
        super().__init__(address, Handler)
        self.directory = directory
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.fail_next = 0
        self.lock = threading.Lock()

    def take_failure(self) -> bool:
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return True
            return False

    def keep(self, text: dict[str, Any]) -> None:
        name = f"{time.time_ns()}-{text['sid']}.json"
        partial = self.directory / f".{name}"
        partial.write_text(json.dumps(text, indent=2))
        partial.rename(self.directory / name)

    def texts(self) -> list[dict[str, Any]]:
        return [json.loads(path.read_text()) for path in sorted(self.directory.glob("*.json"))]


class Handler(BaseHTTPRequestHandler):
    server: ProviderDouble

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the files are the record
        pass

    def _answer(self, status: int, document: Any) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if self.path == "/messages":
            self._answer(200, self.server.texts())
        else:
            self._answer(404, {"message": "not found"})

    def do_POST(self) -> None:
        if self.path == "/control":
            self.server.fail_next = int(json.loads(self._body() or b"{}").get("fail_next", 0))
            self._answer(200, {"fail_next": self.server.fail_next})
            return
        match = MESSAGES_PATH.match(self.path)
        if match is None:
            self._answer(404, {"message": "not found"})
            return
        if not self._authorised(match.group(1)):
            self._answer(401, {"code": 20003, "message": "Authenticate"})
            return
        form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
        if self.server.take_failure():
            self._answer(503, {"code": 20500, "message": "Service unavailable (the double was told to fail)"})
            return
        if not E164.match(form.get("To", "")):
            self._answer(400, {"code": 21211, "message": f"The 'To' number {form.get('To')} is not a valid "
                                                         "phone number."})
            return
        text = {"sid": f"SM{uuid.uuid4().hex}", "status": "queued", "to": form["To"], "from": form.get("From"),
                "body": form.get("Body", ""), "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                                                             time.gmtime())}
        self.server.keep(text)
        self._answer(201, text)

    def _authorised(self, account_sid: str) -> bool:
        if not self.server.account_sid:
            return True
        expected = base64.b64encode(f"{self.server.account_sid}:{self.server.auth_token}".encode()).decode()
        return account_sid == self.server.account_sid and self.headers.get("Authorization") == f"Basic {expected}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--account-sid", default=None)
    parser.add_argument("--auth-token", default=None)
    args = parser.parse_args(argv)
    args.directory.mkdir(parents=True, exist_ok=True)
    server = ProviderDouble((args.host, args.port), args.directory, args.account_sid, args.auth_token)
    print(f"ready http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
