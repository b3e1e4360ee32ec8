"""The processes start and answer with exactly the settings the compose file and the production overlay give them:
every value as written there (parsed by the code, not by the manifests' checks); HS256 tokens in compose, RS256
checked with a public key read from a mounted file in production. Only what must point at this machine is replaced:
the broker, the store, the listening address, the key file's path, and a fresh prefix in front of the deployed
database prefix."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chassis.testing import fresh_databases
from deploy.processes import PROCESSES, Platform
from deploy.tests.manifests import compose, compose_environment, container, example_secrets, interpolated, one, rendered
from gateway.auth import AuthSettings, mint_token
from tests.conftest import free_port

COMPOSE_SECRETS = {"RABBITMQ_PASSWORD": "unused-here", "JWT_SECRET": "compose-check-secret-0123456789abcdef"}


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


def environments(source: str, public_key: Path) -> tuple[dict[str, dict[str, str]], AuthSettings]:
    """Each process's environment in ``source``, and how a token it accepts is checked."""
    if source == "compose":
        services = compose()["services"]
        found = {process: {name: interpolated(value, COMPOSE_SECRETS)
                           for name, value in compose_environment(services[process]).items()}
                 for process in PROCESSES}
        assert found["gateway"]["JWT_ALGORITHM"] == "HS256"
        return found, AuthSettings(secret=found["gateway"]["JWT_SECRET"])
    documents, secrets = rendered(source), example_secrets()
    found = {process: overlay_environment(documents, secrets, process) for process in PROCESSES}
    assert found["gateway"]["JWT_ALGORITHM"] == "RS256"
    found["gateway"]["JWT_PUBLIC_KEY"] = str(public_key)  # where the Secret is mounted in the pod
    return found, AuthSettings(algorithm="RS256", public_key=public_key.read_text())


@pytest.fixture
def key_pair(tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_file = tmp_path / "public.pem"
    public_file.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    return public_file, private_pem


class SettingsPlatform(Platform):
    def start_with(self, process: str, environment: dict[str, str]) -> None:
        self.env = environment
        self.start(process)


@pytest.mark.parametrize("source", ["compose", "production"])
def test_every_process_starts_and_answers_with_the_deployed_settings(source, rabbit_config, mongo_uri, key_pair,
                                                                     tmp_path):
    public_file, private_pem = key_pair
    found, checking = environments(source, public_file)
    address = f"127.0.0.1:{free_port()}"
    here = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHONUNBUFFERED": "1",
            "AMQP_URI": rabbit_config["AMQP_URI"], "MONGO_URI": mongo_uri}
    with fresh_databases(mongo_uri, tag="o") as fresh:
        platform = SettingsPlatform(here, tmp_path / "logs")
        try:
            for process, environment in found.items():
                environment["DATABASE_PREFIX"] = fresh + environment["DATABASE_PREFIX"]
                if process == "gateway":
                    environment["GATEWAY_ADDRESS"] = address
                platform.start_with(process, {**environment, **here})
            platform.wait_until_ready()  # the gateway's /ready: every service answers its health RPC

            signing = replace(checking, private_key=private_pem) if checking.algorithm == "RS256" else checking
            token = mint_token(signing, "ops-1", "admin", ttl_seconds=300)
            answer = requests.get(f"http://{address}/v1/nurses", headers={"Authorization": f"Bearer {token}"},
                                  timeout=15)
            assert answer.status_code == 200, answer.text
            forged = mint_token(AuthSettings(secret="another-key-that-is-at-least-32-bytes-long"), "ops-1", "admin")
            refused = requests.get(f"http://{address}/v1/nurses", headers={"Authorization": f"Bearer {forged}"},
                                   timeout=15)
            assert refused.status_code == 401
        finally:
            platform.stop()
