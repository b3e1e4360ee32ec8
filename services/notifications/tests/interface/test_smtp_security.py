"""Email over an encrypted, authenticated connection, as a real mail relay requires: STARTTLS (upgraded before
anything is said) or implicit TLS, the server's certificate verified against the configured CA, and the login
from the settings. A wrong password is a settings problem: the message waits and is retried, it is not lost."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nameko.testing.services import entrypoint_waiter

from chassis.testing import wait_for
from services.notifications.tests.interface.conftest import DAYTIME, MailServer, registered, start_process


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (it is its own CA)."""
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return directory / "cert.pem", directory / "key.pem"


@pytest.fixture(scope="module", params=["starttls", "tls"])
def secure_mail_server_process(request, tmp_path_factory, certificate):
    cert, key = certificate
    directory = tmp_path_factory.mktemp(f"mail-{request.param}")
    extra = ["--certificate", str(cert), "--key", str(key), "--login", "relay-user:relay-secret"]
    process, address = start_process("services.notifications.mail_sink", directory,
                                     *extra, *(["--implicit-tls"] if request.param == "tls" else []))
    yield request.param, MailServer(directory, address)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def secure_mail_server(secure_mail_server_process):
    secure_mail_server_process[1].clear()
    return secure_mail_server_process


def settings(secure_mail_server, certificate, password: str = "relay-secret") -> dict:
    security, server = secure_mail_server
    return {"SMTP_HOST": server.host, "SMTP_PORT": server.port, "SMTP_SECURITY": security,
            "SMTP_CA_FILE": str(certificate[0]), "SMTP_USERNAME": "relay-user", "SMTP_PASSWORD": password}


def test_email_goes_over_tls_with_the_configured_login(start_notifications, publish, db, secure_mail_server,
                                                       certificate):
    notifications = start_notifications(**settings(secure_mail_server, certificate))
    with entrypoint_waiter(notifications, "remember_contact"):
        publish(registered(time_zone=DAYTIME))

    wait_for(lambda: db.messages.find_one({"status": "sent", "channel": "email"}))
    assert [m["Subject"] for m in secure_mail_server[1].received()] == ["Welcome, Ana"]


def test_a_refused_login_keeps_the_message_waiting_for_the_settings_to_be_fixed(
        start_notifications, publish, db, secure_mail_server, certificate):
    notifications = start_notifications(**settings(secure_mail_server, certificate, password="wrong"),
                                        DELIVERY_FIRST_RETRY_SECONDS=30, DELIVERY_LONGEST_RETRY_SECONDS=30)
    with entrypoint_waiter(notifications, "remember_contact"):
        publish(registered(time_zone=DAYTIME))

    waiting = wait_for(lambda: db.messages.find_one({"channel": "email", "last_error": {"$ne": None}}))
    assert waiting["status"] == "pending" and "refused the login" in waiting["last_error"]
    assert secure_mail_server[1].received() == []
