from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo.database import Database

from chassis.pagination import InvalidCursor, InvalidLimit
from gateway.audit import AuditEntry, AuditLog

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _entry(minute: int, **overrides: object) -> AuditEntry:
    fields = {
        "subject": "nurse-1",
        "role": "nurse",
        "action": "read",
        "resource": "patient",
        "resource_id": "p-1",
        "at": START + timedelta(minutes=minute),
        "ip": "203.0.113.9",
        "user_agent": "infusion-app/2.1",
        "request_id": f"req-{minute}",
        "outcome": 200,
    }
    fields.update(overrides)
    return AuditEntry(**fields)  # type: ignore[arg-type]


@pytest.fixture
def log(db: Database) -> AuditLog:
    return AuditLog(db)


def test_record_and_read_back(log: AuditLog) -> None:
    entry = _entry(0)
    entry_id = log.record(entry)
    page = log.query()
    assert page.next_cursor is None
    [stored] = page.items
    assert stored.entry_id == entry_id
    assert stored == AuditEntry(**{**entry.__dict__, "entry_id": entry_id})
    assert stored.at.utcoffset() == timedelta(0)


def test_the_log_offers_no_way_to_change_history(log: AuditLog) -> None:
    public = {name for name in dir(log) if not name.startswith("_")}
    assert public == {"record", "conclude", "query"}


def test_an_entry_written_before_the_access_gets_its_outcome_and_created_record_once(log: AuditLog) -> None:
    entry_id = log.record(_entry(0, outcome=None, resource_id=None))
    [pending] = log.query().items
    assert pending.outcome is None
    assert log.conclude(entry_id, 201, "apt_1")
    assert not log.conclude(entry_id, 500, "apt_2")  # filled once: never rewritten
    [stored] = log.query().items
    assert (stored.outcome, stored.resource_id, stored.request_id) == (201, "apt_1", "req-0")


def test_concluding_an_entry_that_was_recorded_whole_changes_nothing(log: AuditLog) -> None:
    entry_id = log.record(_entry(0, outcome=403))
    assert not log.conclude(entry_id, 200)
    assert [entry.outcome for entry in log.query().items] == [403]


@pytest.mark.parametrize("outcome", [99, 600])
def test_an_outcome_is_an_http_status(log: AuditLog, outcome: int) -> None:
    with pytest.raises(ValueError):
        log.conclude(log.record(_entry(0, outcome=None)), outcome)


def test_query_is_newest_first_and_paginates(log: AuditLog) -> None:
    for minute in range(5):
        log.record(_entry(minute))
    first = log.query(limit=2)
    second = log.query(limit=2, cursor=first.next_cursor)
    third = log.query(limit=2, cursor=second.next_cursor)
    request_ids = [entry.request_id for page in (first, second, third) for entry in page.items]
    assert request_ids == ["req-4", "req-3", "req-2", "req-1", "req-0"]
    assert third.next_cursor is None


def test_entries_at_the_same_instant_are_neither_lost_nor_repeated(log: AuditLog) -> None:
    ids = {log.record(_entry(0, request_id=f"same-{i}")) for i in range(3)}
    first = log.query(limit=2)
    second = log.query(limit=2, cursor=first.next_cursor)
    assert {entry.entry_id for entry in first.items + second.items} == ids


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"subject": "clinician-2"}, ["req-3"]),
        ({"resource": "consent"}, ["req-2"]),
        ({"resource_id": "p-9"}, ["req-4"]),
        ({"resource": "patient", "resource_id": "p-1"}, ["req-3", "req-1", "req-0"]),
        ({"since": START + timedelta(minutes=1)}, ["req-4", "req-3", "req-2", "req-1"]),
        ({"until": START + timedelta(minutes=1)}, ["req-0"]),
        ({"since": START + timedelta(minutes=1), "until": START + timedelta(minutes=3)}, ["req-2", "req-1"]),
        ({"subject": "nobody"}, []),
    ],
    ids=[
        "subject",
        "resource",
        "resource-id",
        "resource-and-id",
        "since-inclusive",
        "until-exclusive",
        "time-range",
        "no-match",
    ],
)
def test_query_filters(log: AuditLog, filters: dict, expected: list[str]) -> None:
    log.record(_entry(0))
    log.record(_entry(1))
    log.record(_entry(2, resource="consent", resource_id="c-1", action="create", outcome=201))
    log.record(_entry(3, subject="clinician-2", role="clinician"))
    log.record(_entry(4, resource_id="p-9", outcome=404))
    assert [entry.request_id for entry in log.query(**filters).items] == expected


def test_query_refuses_bad_paging(log: AuditLog) -> None:
    with pytest.raises(InvalidCursor):
        log.query(cursor="nope")
    with pytest.raises(InvalidLimit):
        log.query(limit=0)


def test_list_entries_may_have_no_resource_id(log: AuditLog) -> None:
    log.record(_entry(0, action="list", resource_id=None, ip=None, user_agent=None, request_id=None))
    [stored] = log.query().items
    assert (stored.action, stored.resource_id, stored.ip) == ("list", None, None)


def test_long_user_agents_are_truncated() -> None:
    assert len(_entry(0, user_agent="x" * 5000).user_agent or "") == 512


@pytest.mark.parametrize(
    "overrides",
    [{"action": "peek"}, {"outcome": 42}, {"subject": ""}, {"resource": ""}, {"at": datetime(2025, 3, 1)}],
    ids=["unknown-action", "not-a-status", "no-subject", "no-resource", "naive-time"],
)
def test_entry_refuses_invalid_fields(overrides: dict) -> None:
    with pytest.raises(ValueError):
        _entry(0, **overrides)


def test_entry_time_defaults_to_now_in_utc() -> None:
    entry = AuditEntry(subject="u", role="admin", action="list", resource="audit", outcome=200)
    assert entry.at.tzinfo is not None
    assert abs(datetime.now(UTC) - entry.at) < timedelta(seconds=5)
