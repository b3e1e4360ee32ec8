"""A local mail server for development, the demo and the tests: ``aiosmtpd`` on loopback, keeping each
message it receives as an ``.eml`` file (the raw message, readable by any mail client) in a folder.

    python -m services.notifications.mail_sink --port 0 --directory .data/mail

prints ``ready HOST:PORT`` once it listens. ``--refuse`` makes it refuse recipients whose address contains
that text with ``550`` (a mailbox that does not exist), as a real server does. With ``--certificate`` and
``--key`` it speaks TLS: STARTTLS, required before anything else, or implicit TLS with ``--implicit-tls``; with
``--login USER:PASSWORD`` it requires that login (over TLS only).
"""

from __future__ import annotations

import argparse
import signal
import ssl
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class KeepAsFiles:
    def __init__(self, directory: Path, refuse: str | None = None) -> None:
        self.directory = directory
        self.refuse = refuse

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.refuse and self.refuse in address:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.directory / f".{name}"
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(self.directory / name)  # readers never see half a message
        return "250 Message accepted"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--refuse", default=None, help="refuse recipients containing this text (550)")
    parser.add_argument("--certificate", type=Path, help="PEM certificate: speak TLS")
    parser.add_argument("--key", type=Path, help="PEM private key of the certificate")
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte instead of STARTTLS")
    parser.add_argument("--login", default=None, help="USER:PASSWORD required to send")
    args = parser.parse_args(argv)
    args.directory.mkdir(parents=True, exist_ok=True)
    port = args.port
    if port == 0:
        import socket

        with socket.socket() as probe:
            probe.bind((args.host, 0))
            port = probe.getsockname()[1]
    options: dict[str, Any] = {}
    if args.certificate:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certificate, args.key)
        options = {"ssl_context": context} if args.implicit_tls else {"tls_context": context, "require_starttls": True}
    if args.login:
        user, _, password = args.login.partition(":")

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (user, password)
            return AuthResult(success=ok, handled=False)

        # with implicit TLS the whole connection is encrypted: the login may be offered from the start
        options.update(authenticator=authenticate, auth_required=True, auth_require_tls=not args.implicit_tls)
    controller = Controller(KeepAsFiles(args.directory, args.refuse), hostname=args.host, port=port,
                            server_hostname=args.host if args.implicit_tls else None, **options)
    controller.start()
    print(f"ready {args.host}:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
