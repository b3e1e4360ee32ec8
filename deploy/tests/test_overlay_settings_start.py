"""The processes start and answer with exactly the settings the production overlay gives them: every ConfigMap
value as written there (parsed by the code, not by the manifests' checks), RS256 tokens checked with a public key
read from a mounted file. Only what must point at this machine is replaced: the broker, the store, the listening
address, the key file's path, and a fresh prefix in front of the overlay's database prefix."""

from __future__ import annotations

import os

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chassis.testing import fresh_databases
from deploy.processes import PROCESSES, Platform
from deploy.tests.manifests import container, example_secrets, one, rendered
from gateway.auth import AuthSettings, mint_token
from tests.conftest import free_port

OVERLAY = "production"


def overlay_environment(documents, secrets, process: str) -> dict[str, str]:
    """The variables the process's container gets in the overlay: its ConfigMaps by envFrom, then its env (Secret
    keys take the example Secret's placeholder)."""
    item = container(one(documents, "Deployment", process))
    environment: dict[str, str] = {}
    for source in item.get("envFrom", []):
        environment.update(one(documents, "ConfigMap", source["configMapRef"]["name"]).get("data", {}))
    for variable in item.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        else:
            reference = variable["valueFrom"]["secretKeyRef"]
            environment[variable["name"]] = one(secrets, "Secret", reference["name"])["stringData"][reference["key"]]
    return environment


@pytest.fixture
def key_pair(tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_file = tmp_path / "public.pem"
    public_file.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    return public_file, private_pem


class OverlayPlatform(Platform):
    def start_with(self, process: str, environment: dict[str, str]) -> None:
        self.env = environment
        self.start(process)


def test_every_process_starts_and_answers_with_the_production_settings(rabbit_config, mongo_uri, key_pair,
                                                                        tmp_path):
    documents, secrets = rendered(OVERLAY), example_secrets()
    public_file, private_pem = key_pair
    address = f"127.0.0.1:{free_port()}"
    here = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHONUNBUFFERED": "1",
            "AMQP_URI": rabbit_config["AMQP_URI"], "MONGO_URI": mongo_uri}
    with fresh_databases(mongo_uri, tag="o") as fresh:
        platform = OverlayPlatform(here, tmp_path / "logs")
        try:
            for process in PROCESSES:
                environment = overlay_environment(documents, secrets, process)
                environment["DATABASE_PREFIX"] = fresh + environment["DATABASE_PREFIX"]
                if process == "gateway":
                    assert environment["JWT_ALGORITHM"] == "RS256"
                    environment.update(GATEWAY_ADDRESS=address, JWT_PUBLIC_KEY=str(public_file))
                platform.start_with(process, {**environment, **here})
            platform.wait_until_ready()  # the gateway's /ready: every service answers its health RPC

            settings = AuthSettings(algorithm="RS256", private_key=private_pem, public_key=public_file.read_text())
            token = mint_token(settings, "ops-1", "admin", ttl_seconds=300)
            answer = requests.get(f"http://{address}/v1/nurses", headers={"Authorization": f"Bearer {token}"},
                                  timeout=15)
            assert answer.status_code == 200, answer.text
            forged = mint_token(AuthSettings(secret="another-key-that-is-at-least-32-bytes-long"), "ops-1", "admin")
            refused = requests.get(f"http://{address}/v1/nurses", headers={"Authorization": f"Bearer {forged}"},
                                   timeout=15)
            assert refused.status_code == 401
        finally:
            platform.stop()
