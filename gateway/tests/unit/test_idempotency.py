from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo.database import Database

from gateway.idempotency import (
    IdempotencyStore,
    InProgress,
    InvalidIdempotencyKey,
    Mismatch,
    Proceed,
    Replay,
    validate_key,
)

# Close to the real clock: the TTL index would otherwise reap records stamped in the past.
NOW = datetime.now(UTC).replace(microsecond=0)
ROUTE = "create_payment"
BODY = b'{"amount_cents": 45000}'


@pytest.fixture
def store(db: Database) -> IdempotencyStore:
    return IdempotencyStore(db, lease_seconds=30, retention_hours=24)


def _claim(store: IdempotencyStore, key: str = "k-1", body: bytes = BODY, **kwargs: object) -> Proceed:
    outcome = store.begin(
        key,
        kwargs.pop("subject", "patient-1"),
        kwargs.pop("route", ROUTE),
        body,  # type: ignore[arg-type]
        now=kwargs.pop("now", NOW),
    )  # type: ignore[arg-type]
    assert isinstance(outcome, Proceed)
    return outcome


def test_first_request_proceeds(store: IdempotencyStore) -> None:
    assert isinstance(store.begin("k-1", "patient-1", ROUTE, BODY, now=NOW), Proceed)


def test_completed_request_is_replayed(store: IdempotencyStore) -> None:
    claim = _claim(store)
    assert store.complete(claim.record_id, 201, {"Location": "/v1/payments/p-1"}, '{"id": "p-1"}', now=NOW)
    outcome = store.begin("k-1", "patient-1", ROUTE, BODY, now=NOW + timedelta(hours=1))
    assert outcome == Replay(201, {"Location": "/v1/payments/p-1"}, b'{"id": "p-1"}')


def test_same_key_other_body_is_a_mismatch(store: IdempotencyStore) -> None:
    claim = _claim(store)
    assert store.begin("k-1", "patient-1", ROUTE, b'{"amount_cents": 1}', now=NOW) == Mismatch()
    store.complete(claim.record_id, 201, {}, b"{}", now=NOW)
    assert store.begin("k-1", "patient-1", ROUTE, b'{"amount_cents": 1}', now=NOW) == Mismatch()


def test_running_request_blocks_a_repeat_with_retry_after(store: IdempotencyStore) -> None:
    _claim(store)
    assert store.begin("k-1", "patient-1", ROUTE, BODY, now=NOW + timedelta(seconds=10)) == InProgress(20)


def test_an_unanswered_claim_stays_pending_until_its_lease_ends(store: IdempotencyStore) -> None:
    """A request that failed (5xx, timeout) is never released: its work may have been done."""
    _claim(store)
    assert store.begin("k-1", "patient-1", ROUTE, BODY, now=NOW + timedelta(seconds=29)) == InProgress(1)
    assert isinstance(store.begin("k-1", "patient-1", ROUTE, BODY, now=NOW + timedelta(seconds=30)), Proceed)


def test_every_claim_of_one_key_runs_with_the_same_operation_key(store: IdempotencyStore) -> None:
    first = _claim(store)
    retry = _claim(store, now=NOW + timedelta(seconds=31))
    assert retry.record_id != first.record_id
    assert retry.operation_key == first.operation_key
    other_caller = _claim(store, subject="patient-2")
    other_key = _claim(store, key="k-2")
    assert len({first.operation_key, other_caller.operation_key, other_key.operation_key}) == 3


def test_stale_claim_is_taken_over_once(store: IdempotencyStore) -> None:
    first = _claim(store)
    later = NOW + timedelta(seconds=31)
    second = store.begin("k-1", "patient-1", ROUTE, BODY, now=later)
    assert isinstance(second, Proceed)
    # The new owner holds a fresh lease: a third caller must wait.
    assert isinstance(store.begin("k-1", "patient-1", ROUTE, BODY, now=later), InProgress)
    # The process that lost its lease cannot store anything any more.
    assert not store.complete(first.record_id, 201, {}, b"late", now=later)
    assert store.complete(second.record_id, 201, {}, b"winner", now=later)
    assert store.begin("k-1", "patient-1", ROUTE, BODY, now=later).body == b"winner"  # type: ignore[union-attr]


def test_complete_twice_keeps_the_first_response(store: IdempotencyStore) -> None:
    claim = _claim(store)
    assert store.complete(claim.record_id, 201, {}, b"first", now=NOW)
    assert not store.complete(claim.record_id, 500, {}, b"second", now=NOW)
    assert store.begin("k-1", "patient-1", ROUTE, BODY, now=NOW) == Replay(201, {}, b"first")


@pytest.mark.parametrize(
    ("subject", "route"),
    [("patient-2", ROUTE), ("patient-1", "create_refund")],
    ids=["other-subject", "other-route"],
)
def test_keys_are_scoped_per_subject_and_route(store: IdempotencyStore, subject: str, route: str) -> None:
    _claim(store)
    assert isinstance(store.begin("k-1", subject, route, b"anything", now=NOW), Proceed)


def test_key_is_reusable_after_retention(store: IdempotencyStore) -> None:
    claim = _claim(store)
    store.complete(claim.record_id, 201, {}, b"old", now=NOW)
    assert isinstance(
        store.begin("k-1", "patient-1", ROUTE, b"new body", now=NOW + timedelta(hours=25)), Proceed
    )


def test_purge_removes_only_expired_records(store: IdempotencyStore, db: Database) -> None:
    _claim(store, key="old")
    _claim(store, key="new", now=NOW + timedelta(hours=20))
    assert store.purge_expired(now=NOW + timedelta(hours=24, seconds=1)) == 1
    assert db.idempotency_keys.count_documents({}) == 1


def test_string_and_bytes_bodies_compare_equal(store: IdempotencyStore) -> None:
    claim = _claim(store, body=b'{"a": "\xc3\xa9"}')
    store.complete(claim.record_id, 200, {}, "ok", now=NOW)
    assert isinstance(store.begin("k-1", "patient-1", ROUTE, '{"a": "é"}', now=NOW), Replay)


@pytest.mark.parametrize("key", ["a", "A" * 255, "order-2025-03-01:7f3a", "~!@#$%^&*()"])
def test_valid_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    ["", None, "A" * 256, "has space", "tab\there", "é", "line\nbreak", "\x7f"],
    ids=["empty", "none", "too-long", "space", "tab", "non-ascii", "newline", "del"],
)
def test_invalid_keys_are_refused_with_400(store: IdempotencyStore, key: str | None) -> None:
    with pytest.raises(InvalidIdempotencyKey) as raised:
        store.begin(key, "patient-1", ROUTE, BODY, now=NOW)  # type: ignore[arg-type]
    assert (raised.value.status, raised.value.code) == (400, "invalid_idempotency_key")


def test_malformed_record_id_is_a_programming_error(store: IdempotencyStore) -> None:
    with pytest.raises(ValueError):
        store.complete("no-claim-part", 200, {}, b"")


def _race(store: IdempotencyStore, now: datetime, callers: int = 6) -> list[object]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=callers) as pool:
        return list(pool.map(lambda _: store.begin("k-1", "patient-1", ROUTE, BODY, now=now), range(callers)))


def test_concurrent_first_requests_claim_exactly_once(store: IdempotencyStore) -> None:
    outcomes = _race(store, NOW)
    assert sum(isinstance(outcome, Proceed) for outcome in outcomes) == 1
    assert all(isinstance(outcome, (Proceed, InProgress)) for outcome in outcomes)


def test_concurrent_takeovers_of_a_stale_claim_succeed_exactly_once(store: IdempotencyStore) -> None:
    _claim(store)
    outcomes = _race(store, NOW + timedelta(seconds=45))
    assert sum(isinstance(outcome, Proceed) for outcome in outcomes) == 1
