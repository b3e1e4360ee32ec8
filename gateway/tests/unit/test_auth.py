from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.auth import ROLES, AuthSettings, Principal, Unauthenticated, authenticate, mint_token

SECRET = "s" * 64
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
HS256 = AuthSettings(algorithm="HS256", secret=SECRET, leeway_seconds=10, default_ttl_seconds=600)


@pytest.fixture(scope="module")
def rsa_pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge_hs256(claims: dict, key: bytes, alg: str = "HS256") -> str:
    """Sign by hand: PyJWT refuses to HMAC with a PEM key, an attacker does not."""
    signing_input = (
        f"{_b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(**overrides: object) -> dict:
    issued_at = int(NOW.timestamp())
    claims = {
        "sub": "u-1",
        "role": "nurse",
        "iss": "infusion",
        "aud": "infusion-api",
        "iat": issued_at,
        "exp": issued_at + 600,
        "jti": "j-1",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _bearer(token: str) -> str:
    return f"Bearer {token}"


def test_hs256_round_trip() -> None:
    token = mint_token(HS256, "clinician-7", "clinician", now=NOW)
    principal = authenticate(HS256, _bearer(token), now=NOW + timedelta(minutes=5))
    assert isinstance(principal, Principal)
    assert (principal.subject, principal.role) == ("clinician-7", "clinician")
    assert principal.claims["iss"] == "infusion"
    assert principal.claims["aud"] == "infusion-api"
    assert principal.claims["exp"] - principal.claims["iat"] == 600
    assert principal.claims["jti"]


def test_each_token_gets_its_own_jti() -> None:
    first = authenticate(HS256, _bearer(mint_token(HS256, "u", "patient", now=NOW)), now=NOW)
    second = authenticate(HS256, _bearer(mint_token(HS256, "u", "patient", now=NOW)), now=NOW)
    assert first.claims["jti"] != second.claims["jti"]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_can_be_minted(role: str) -> None:
    assert authenticate(HS256, _bearer(mint_token(HS256, "u", role, now=NOW)), now=NOW).role == role


def test_mint_refuses_unknown_role() -> None:
    with pytest.raises(ValueError):
        mint_token(HS256, "u", "superuser", now=NOW)


def test_scheme_is_case_insensitive() -> None:
    token = mint_token(HS256, "u", "admin", now=NOW)
    assert authenticate(HS256, f"bearer  {token}", now=NOW).role == "admin"


def _tampered() -> str:
    header, payload, signature = mint_token(HS256, "u-1", "patient", now=NOW).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _unsigned() -> str:
    return (
        f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(_claims()).encode())}."
    )


AUTH_FAILURES = [
    ("no-header", lambda: None, "missing_token"),
    ("blank-header", lambda: "   ", "missing_token"),
    ("basic-scheme", lambda: "Basic dXNlcjpwYXNz", "malformed_token"),
    ("bearer-without-token", lambda: "Bearer", "malformed_token"),
    ("not-a-jwt", lambda: "Bearer abc.def", "malformed_token"),
    ("garbage-segments", lambda: "Bearer a.b.c", "malformed_token"),
    ("too-long", lambda: "Bearer " + "a" * 9000, "malformed_token"),
    ("tampered-payload", lambda: _bearer(_tampered()), "bad_signature"),
    ("other-secret", lambda: _bearer(jwt.encode(_claims(), "x" * 40, algorithm="HS256")), "bad_signature"),
    ("alg-none", lambda: _bearer(_unsigned()), "bad_signature"),
    ("alg-hs512", lambda: _bearer(jwt.encode(_claims(), SECRET, algorithm="HS512")), "bad_signature"),
    ("expired", lambda: _bearer(jwt.encode(_claims(exp=int(NOW.timestamp()) - 11), SECRET)), "token_expired"),
    ("wrong-audience", lambda: _bearer(jwt.encode(_claims(aud="billing"), SECRET)), "wrong_audience"),
    ("wrong-issuer", lambda: _bearer(jwt.encode(_claims(iss="evil"), SECRET)), "wrong_issuer"),
    ("unknown-role", lambda: _bearer(jwt.encode(_claims(role="superuser"), SECRET)), "unknown_role"),
    ("no-role", lambda: _bearer(jwt.encode(_claims(role=None), SECRET)), "unknown_role"),
    ("no-exp", lambda: _bearer(jwt.encode(_claims(exp=None), SECRET)), "malformed_token"),
    ("no-sub", lambda: _bearer(jwt.encode(_claims(sub=None), SECRET)), "malformed_token"),
    ("string-exp", lambda: _bearer(jwt.encode(_claims(exp="tomorrow"), SECRET)), "malformed_token"),
    (
        "issued-in-future",
        lambda: _bearer(jwt.encode(_claims(iat=int(NOW.timestamp()) + 3600), SECRET)),
        "token_not_yet_valid",
    ),
]


@pytest.mark.parametrize(
    ("header", "code"),
    [(make, code) for _, make, code in AUTH_FAILURES],
    ids=[name for name, _, _ in AUTH_FAILURES],
)
def test_authenticate_refuses(header, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Unauthenticated) as raised:
        authenticate(HS256, header(), now=NOW)
    assert raised.value.code == code
    assert raised.value.status == 401
    assert "WWW-Authenticate" in raised.value.headers()


def test_expiry_allows_the_configured_leeway() -> None:
    token = jwt.encode(_claims(exp=int(NOW.timestamp()) - 5), SECRET)
    assert authenticate(HS256, _bearer(token), now=NOW).subject == "u-1"


def test_unauthenticated_renders_as_problem() -> None:
    with pytest.raises(Unauthenticated) as raised:
        authenticate(HS256, None, now=NOW)
    status, headers, body = raised.value.to_problem("req-1")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(body)["code"] == "missing_token"


def test_rs256_round_trip(rsa_pem_pair: tuple[str, str]) -> None:
    private_pem, public_pem = rsa_pem_pair
    settings = AuthSettings(algorithm="RS256", public_key=public_pem, private_key=private_pem)
    token = mint_token(settings, "patient-3", "patient", now=NOW)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert authenticate(settings, _bearer(token), now=NOW).subject == "patient-3"


def test_rs256_key_confusion_attack_fails(rsa_pem_pair: tuple[str, str]) -> None:
    """An HS256 token whose HMAC key is the (public) RSA key must not pass an RS256 gateway."""
    _, public_pem = rsa_pem_pair
    settings = AuthSettings(algorithm="RS256", public_key=public_pem)
    forged = _forge_hs256(_claims(role="admin"), public_pem.encode())
    with pytest.raises(Unauthenticated) as raised:
        authenticate(settings, _bearer(forged), now=NOW)
    assert raised.value.code == "bad_signature"


def test_rs256_refuses_a_token_signed_by_another_key(rsa_pem_pair: tuple[str, str]) -> None:
    _, public_pem = rsa_pem_pair
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), other, algorithm="RS256")
    with pytest.raises(Unauthenticated) as raised:
        authenticate(AuthSettings(algorithm="RS256", public_key=public_pem), _bearer(token), now=NOW)
    assert raised.value.code == "bad_signature"


def test_rs256_minting_needs_the_private_key(rsa_pem_pair: tuple[str, str]) -> None:
    settings = AuthSettings(algorithm="RS256", public_key=rsa_pem_pair[1])
    with pytest.raises(ValueError, match="JWT_PRIVATE_KEY"):
        mint_token(settings, "u", "patient", now=NOW)


def test_from_config_defaults() -> None:
    settings = AuthSettings.from_config({"JWT_SECRET": SECRET})
    assert settings.algorithm == "HS256"
    assert (settings.issuer, settings.audience) == ("infusion", "infusion-api")
    assert settings.leeway_seconds >= 0
    assert settings.default_ttl_seconds > 0


def test_from_config_reads_strings_and_key_files(tmp_path: Path, rsa_pem_pair: tuple[str, str]) -> None:
    private_pem, public_pem = rsa_pem_pair
    (tmp_path / "public.pem").write_text(public_pem)
    settings = AuthSettings.from_config(
        {
            "JWT_ALGORITHM": "rs256",
            "JWT_PUBLIC_KEY": str(tmp_path / "public.pem"),
            "JWT_PRIVATE_KEY": private_pem,
            "JWT_ISSUER": "infusion-staging",
            "JWT_AUDIENCE": "staging-api",
            "JWT_LEEWAY_SECONDS": "5",
            "JWT_TTL_SECONDS": "120",
        }
    )
    assert settings.public_key == public_pem
    assert (settings.leeway_seconds, settings.default_ttl_seconds) == (5, 120)
    claims = authenticate(settings, _bearer(mint_token(settings, "u", "finance", now=NOW)), now=NOW).claims
    assert (claims["iss"], claims["aud"], claims["exp"] - claims["iat"]) == (
        "infusion-staging",
        "staging-api",
        120,
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "at least 32 bytes"),
        ({"JWT_SECRET": "short"}, "at least 32 bytes"),
        ({"JWT_ALGORITHM": "RS256"}, "JWT_PUBLIC_KEY"),
        ({"JWT_ALGORITHM": "none", "JWT_SECRET": SECRET}, "algorithm"),
        ({"JWT_ALGORITHM": "ES256", "JWT_SECRET": SECRET}, "algorithm"),
    ],
    ids=["no-secret", "short-secret", "rs256-without-key", "alg-none", "unsupported-alg"],
)
def test_from_config_refuses(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuthSettings.from_config(config)
