"""Bearer tokens over HTTP: every kind of bad token is a 401 problem with the right code and an RFC 6750
challenge, and a request carrying one changes nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from gateway.auth import AuthSettings, mint_token
from gateway.tests.interface.support import AUTH, JWT_SECRET, Platform, assert_problem, bearer
from services.scheduling.tests.examples import nurse_record


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(subject: str, role: str = "patient", **overrides: object) -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    return {"sub": subject, "role": role, "iss": AUTH.issuer, "aud": AUTH.audience, "iat": now, "exp": now + 600,
            "jti": "t", **overrides}


def tampered(subject: str, role: str) -> str:
    """A genuine token whose payload was edited (to claim the admin role), signature kept."""
    header, _, signature = mint_token(AUTH, subject, role).split(".")
    payload = b64url(json.dumps(claims(subject, "admin")).encode())
    return f"{header}.{payload}.{signature}"


def unsigned(subject: str, role: str) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims(subject, role)).encode())}."


def other(**settings: object) -> AuthSettings:
    return AuthSettings(**{"secret": JWT_SECRET, **settings})


def hs256(payload: dict[str, object]) -> str:
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


HOUR = timedelta(hours=1)

# (name, Authorization header for (subject, role), expected code)
BAD_AUTHORIZATIONS: list[tuple[str, Callable[[str, str], str | None], str]] = [
    ("tampered_payload", lambda s, r: f"Bearer {tampered(s, r)}", "bad_signature"),
    ("expired", lambda s, r: "Bearer " + mint_token(AUTH, s, r, ttl_seconds=60, now=datetime.now(UTC) - HOUR),
     "token_expired"),
    ("not_yet_valid", lambda s, r: "Bearer " + mint_token(AUTH, s, r, now=datetime.now(UTC) + HOUR),
     "token_not_yet_valid"),
    ("wrong_audience", lambda s, r: "Bearer " + mint_token(other(audience="another-api"), s, r), "wrong_audience"),
    ("wrong_issuer", lambda s, r: "Bearer " + mint_token(other(issuer="someone-else"), s, r), "wrong_issuer"),
    ("another_secret", lambda s, r: "Bearer " + mint_token(other(secret="another-secret-" + "x" * 30), s, r),
     "bad_signature"),
    ("alg_none", lambda s, r: f"Bearer {unsigned(s, r)}", "bad_signature"),
    ("other_hmac_algorithm", lambda s, r: "Bearer " + jwt.encode(claims(s, r), JWT_SECRET, algorithm="HS512"),
     "bad_signature"),
    ("unknown_role", lambda s, r: "Bearer " + hs256(claims(s, "superuser")), "unknown_role"),
    ("no_expiry", lambda s, r: "Bearer " + hs256({k: v for k, v in claims(s, r).items() if k != "exp"}),
     "malformed_token"),
    ("garbage", lambda s, r: "Bearer not.a-jwt", "malformed_token"),
    ("token_without_bearer_scheme", lambda s, r: mint_token(AUTH, s, r), "malformed_token"),
    ("basic_scheme", lambda s, r: "Basic " + b64url(b"dana:secret"), "malformed_token"),
    ("bearer_without_token", lambda s, r: "Bearer", "malformed_token"),
    ("missing", lambda s, r: None, "missing_token"),
]
BAD_IDS = [case[0] for case in BAD_AUTHORIZATIONS]


@pytest.fixture(scope="module")
def patient_id(platform: Platform) -> str:
    platform.add_nurse()
    return platform.register(cleared=True)


def booking(platform: Platform, patient_id: str, authorization: str | None):
    headers = {} if authorization is None else {"Authorization": authorization}
    return platform.post("/v1/appointments", headers=headers,
                         json={"patient_id": patient_id, "visit_type": "iv-mood", "start_at": platform.times.next()})


@pytest.mark.parametrize(("name", "make", "code"), BAD_AUTHORIZATIONS, ids=BAD_IDS)
def test_a_bad_token_is_401_with_its_code_and_a_challenge_and_books_nothing(platform, patient_id, name, make, code):
    response = booking(platform, patient_id, make(patient_id, "patient"))
    assert_problem(response, 401, code)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="infusion"')
    if code == "missing_token":
        assert "error=" not in challenge  # RFC 6750: no error code when no credentials were sent
    else:
        assert 'error="invalid_token"' in challenge and code in challenge
    assert platform.db("scheduling").appointments.count_documents({"patient_id": patient_id}) == 0


@pytest.mark.parametrize(("name", "make", "code"), BAD_AUTHORIZATIONS, ids=BAD_IDS)
def test_a_bad_admin_token_changes_no_nurse(platform, name, make, code):
    nurse_id = f"nur_bad_{name}"
    role = "nurse" if name == "tampered_payload" else "admin"  # a nurse's token edited to claim admin
    authorization = make("ops-1", role)
    response = platform.put(f"/v1/nurses/{nurse_id}", headers={"Authorization": authorization} if authorization else {},
                            json=nurse_record("Mallory"))
    assert_problem(response, 401, code)
    assert platform.db("scheduling").nurses.find_one({"_id": nurse_id}) is None


def test_a_bad_token_reads_no_health_record(platform, patient_id):
    forged = {"Authorization": f"Bearer {tampered(patient_id, 'patient')}"}
    response = platform.get(f"/v1/patients/{patient_id}", headers=forged)
    assert_problem(response, 401, "bad_signature")
    assert "Dana" not in response.text


def test_a_good_token_for_the_same_request_books(platform):
    """The control: the request the bad tokens carried is otherwise acceptable (another patient, same shape)."""
    patient_id = platform.register(cleared=True)
    response = platform.post("/v1/appointments", headers=bearer("patient", patient_id),
                             json={"patient_id": patient_id, "visit_type": "iv-mood",
                                   "start_at": platform.times.next()})
    assert response.status_code == 201, response.text
