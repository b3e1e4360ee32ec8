"""Tokens signed with RS256: the gateway holds only the public key; the identity provider signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from nameko.testing.utils import find_free_port

from gateway.auth import AuthSettings, mint_token
from gateway.service import GatewayService


def hs256_signed_with(secret: str, claims: dict) -> str:
    """The classic key-confusion forgery: HS256 keyed with the server's public PEM (PyJWT refuses to make it)."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{part(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{part(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


def pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture
def rs256_gateway(container_factory, service_config, tmp_path):
    private, public = pem_pair()
    public_key_file = tmp_path / "jwt.pub"
    public_key_file.write_text(public)  # the setting takes PEM text or, as here, a file path
    address = f"127.0.0.1:{find_free_port()}"
    container = container_factory(GatewayService, {**service_config, "WEB_SERVER_ADDRESS": address,
                                                   "JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": str(public_key_file)})
    container.start()
    return f"http://{address}", private, public


def test_a_token_signed_by_the_identity_providers_private_key_is_accepted(rs256_gateway):
    url, private, public = rs256_gateway
    signer = AuthSettings(algorithm="RS256", public_key=public, private_key=private)
    answer = requests.get(f"{url}/v1/audit", headers={"Authorization": f"Bearer {mint_token(signer, 'ops', 'admin')}"})
    assert answer.status_code == 200, answer.text


def test_a_token_signed_by_another_key_or_with_the_public_key_as_an_hmac_secret_is_refused(rs256_gateway):
    url, _, public = rs256_gateway
    other_private, other_public = pem_pair()
    forged = mint_token(AuthSettings(algorithm="RS256", public_key=other_public, private_key=other_private),
                        "ops", "admin")
    key_confusion = hs256_signed_with(public, {"sub": "ops", "role": "admin", "iss": "infusion",
                                               "aud": "infusion-api", "iat": int(time.time()),
                                               "exp": int(time.time()) + 600})
    for token in (forged, key_confusion):
        answer = requests.get(f"{url}/v1/audit", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401
        assert answer.json()["code"] == "bad_signature"
