from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chassis.pagination import (
    InvalidCursor,
    InvalidLimit,
    clamp_limit,
    decode_cursor,
    decode_position,
    encode_cursor,
    encode_position,
)

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_cursor_round_trip_is_url_safe() -> None:
    position = {"created_at": "2025-03-01T09:00:00+00:00", "id": "p/1+2?"}
    cursor = encode_cursor(position)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor) == position


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        _b64(b"not json"),
        _b64(b"[1, 2]"),
        _b64(b"{}"),
        _b64(b'{"id": {"$gt": ""}}'),
        _b64(b'{"id": [1]}'),
        _b64(b"\xff\xfe"),
        _b64(b'{"id": "x"}') + "==",
        "A" * 2000,
    ],
    ids=[
        "empty",
        "bad-alphabet",
        "not-json",
        "array",
        "empty-object",
        "operator-injection",
        "list-value",
        "not-utf8",
        "padding",
        "too-long",
    ],
)
def test_decode_cursor_refuses_malformed(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as raised:
        decode_cursor(cursor)
    assert raised.value.status == 400
    assert raised.value.code == "invalid_cursor"


def test_position_round_trip_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    cursor = encode_position(datetime(2025, 3, 1, 10, 0, tzinfo=paris), "a1")
    assert decode_position(cursor) == (START, "a1")


def test_a_position_on_a_scalar_sort_key_round_trips() -> None:
    assert decode_position(encode_position(42, "a1")) == (42, "a1")


@pytest.mark.parametrize(
    "position",
    [
        {"id": "a1"},
        {"at": "yesterday", "id": "a1"},
        {"at": "2025-03-01T09:00:00", "id": "a1"},
        {"at": "2025-03-01T09:00:00+00:00", "id": 7},
        {"at": "2025-03-01T09:00:00+00:00", "id": "a1", "extra": 1},
    ],
    ids=["no-time", "bad-time", "naive-time", "non-string-id", "extra-key"],
)
def test_decode_position_refuses_other_shapes(position: dict) -> None:
    with pytest.raises(InvalidCursor):
        decode_position(encode_cursor(position))


def test_encode_position_refuses_naive_datetime() -> None:
    with pytest.raises(ValueError):
        encode_position(datetime(2025, 3, 1), "a1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 20), ("", 20), (5, 5), ("7", 7), (" 8 ", 8), (100, 100), (101, 100), ("5000", 100)],
)
def test_clamp_limit_accepts(value: int | str | None, expected: int) -> None:
    assert clamp_limit(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", "-3", "abc", "1.5", 2.0, True, "١٢", [3]])
def test_clamp_limit_refuses(value: object) -> None:
    with pytest.raises(InvalidLimit) as raised:
        clamp_limit(value)  # type: ignore[arg-type]
    assert raised.value.code == "invalid_limit"


def test_clamp_limit_custom_bounds() -> None:
    assert clamp_limit(None, default=50, maximum=200) == 50
    assert clamp_limit(300, default=50, maximum=200) == 200


