"""Bearer JWT authentication for the gateway.

Tokens carry ``sub`` (the user), ``role`` (one of :data:`ROLES`), ``iss``, ``aud``,
``iat``, ``exp`` and ``jti``. Only the configured algorithm is ever accepted, so
``alg: none`` and the HS256-signed-with-the-RSA-public-key confusion both fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt

from chassis.clock import utc
from gateway.problems import ProblemError

ROLES = ("patient", "clinician", "nurse", "finance", "admin")
ALGORITHMS = ("HS256", "RS256")
MIN_SECRET_BYTES = 32
MAX_TOKEN_LENGTH = 8192
REQUIRED_CLAIMS = ("sub", "iss", "aud", "iat", "exp")


class Unauthenticated(ProblemError):
    """The request carries no usable bearer token (HTTP 401)."""

    status = 401
    title = "Unauthenticated"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail, code=code)

    def headers(self) -> dict[str, str]:
        """RFC 6750: a bare challenge when no token was sent, ``invalid_token`` otherwise."""
        challenge = 'Bearer realm="infusion"'
        if self.code != "missing_token":
            challenge += f', error="invalid_token", error_description="{self.code}"'
        return {"WWW-Authenticate": challenge}


@dataclass(frozen=True)
class AuthSettings:
    """How tokens are signed and checked."""

    algorithm: str = "HS256"
    secret: str | None = None
    public_key: str | None = None
    private_key: str | None = None
    issuer: str = "infusion"
    audience: str = "infusion-api"
    leeway_seconds: int = 30
    default_ttl_seconds: int = 900

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"JWT algorithm must be one of {', '.join(ALGORITHMS)}, not {self.algorithm!r}")
        if self.algorithm == "HS256":
            if not self.secret or len(self.secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes for HS256")
        elif not self.public_key:
            raise ValueError("JWT_PUBLIC_KEY is required for RS256")
        if self.leeway_seconds < 0 or self.default_ttl_seconds < 1:
            raise ValueError("JWT leeway must be >= 0 and TTL >= 1 second")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AuthSettings:
        """Read ``JWT_*`` keys; key settings accept PEM text or a path to a PEM file."""
        return cls(
            algorithm=str(config.get("JWT_ALGORITHM", "HS256")).upper(),
            secret=config.get("JWT_SECRET"),
            public_key=_pem(config.get("JWT_PUBLIC_KEY")),
            private_key=_pem(config.get("JWT_PRIVATE_KEY")),
            issuer=str(config.get("JWT_ISSUER", "infusion")),
            audience=str(config.get("JWT_AUDIENCE", "infusion-api")),
            leeway_seconds=int(config.get("JWT_LEEWAY_SECONDS", 30)),
            default_ttl_seconds=int(config.get("JWT_TTL_SECONDS", 900)),
        )

    @property
    def verification_key(self) -> str:
        return self.secret if self.algorithm == "HS256" else self.public_key  # type: ignore[return-value]

    @property
    def signing_key(self) -> str:
        if self.algorithm == "HS256":
            return self.secret  # type: ignore[return-value]
        if not self.private_key:
            raise ValueError("JWT_PRIVATE_KEY is required to mint RS256 tokens")
        return self.private_key


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    subject: str
    role: str
    claims: dict[str, Any] = field(default_factory=dict)


def mint_token(
    settings: AuthSettings,
    subject: str,
    role: str,
    ttl_seconds: int | None = None,
    now: datetime | None = None,
) -> str:
    """Sign a token for ``subject`` acting as ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if not subject:
        raise ValueError("subject must not be empty")
    issued_at = int(utc(now).timestamp())
    claims = {
        "sub": subject,
        "role": role,
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": issued_at,
        "exp": issued_at + (ttl_seconds if ttl_seconds is not None else settings.default_ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.signing_key, algorithm=settings.algorithm)


def authenticate(
    settings: AuthSettings, authorization_header: str | None, now: datetime | None = None
) -> Principal:
    """Verify an ``Authorization: Bearer <jwt>`` header and return who is calling."""
    token = _bearer_token(authorization_header)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise Unauthenticated("malformed_token", "The bearer token is not a well-formed JWT.") from exc
    if header.get("alg") != settings.algorithm:
        raise Unauthenticated("bad_signature", "The token is not signed with the accepted algorithm.")
    try:
        claims = jwt.decode(
            token,
            settings.verification_key,
            algorithms=[settings.algorithm],
            audience=settings.audience,
            issuer=settings.issuer,
            # Time claims are checked below against ``now`` so tests can pin the clock.
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise Unauthenticated("bad_signature", "The token signature does not verify.") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise Unauthenticated(
            "bad_signature", "The token is not signed with the accepted algorithm."
        ) from exc
    except jwt.InvalidAudienceError as exc:
        raise Unauthenticated("wrong_audience", "The token was issued for another audience.") from exc
    except jwt.InvalidIssuerError as exc:
        raise Unauthenticated("wrong_issuer", "The token was issued by an untrusted issuer.") from exc
    except jwt.InvalidTokenError as exc:  # DecodeError, MissingRequiredClaimError, bad claim types
        raise Unauthenticated("malformed_token", f"The bearer token is malformed: {exc}") from exc
    _check_lifetime(claims, utc(now), settings.leeway_seconds)
    subject, role = claims["sub"], claims.get("role")
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated("malformed_token", "The token has no subject.")
    if role not in ROLES:
        raise Unauthenticated("unknown_role", "The token's role is not one this API knows.")
    return Principal(subject=subject, role=role, claims=claims)


def _bearer_token(authorization_header: str | None) -> str:
    if authorization_header is None or not authorization_header.strip():
        raise Unauthenticated("missing_token", "An Authorization: Bearer token is required.")
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthenticated("malformed_token", "The Authorization header must be 'Bearer <token>'.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("malformed_token", "The bearer token is too long.")
    return token


def _check_lifetime(claims: Mapping[str, Any], now: datetime, leeway: int) -> None:
    timestamp = now.timestamp()
    for name in ("exp", "iat", "nbf"):
        if name in claims and (isinstance(claims[name], bool) or not isinstance(claims[name], (int, float))):
            raise Unauthenticated("malformed_token", f"The token's {name} claim is not a number.")
    if claims["exp"] <= timestamp - leeway:
        raise Unauthenticated("token_expired", "The token has expired.")
    not_before = max(claims["iat"], claims.get("nbf", claims["iat"]))
    if not_before > timestamp + leeway:
        raise Unauthenticated("token_not_yet_valid", "The token is not valid yet.")


def _pem(value: str | None) -> str | None:
    """PEM text as is; anything else is a path to a PEM file."""
    if value is None or not str(value).strip():
        return None
    text = str(value)
    if "-----BEGIN" in text:
        return text
    return Path(text).expanduser().read_text()
