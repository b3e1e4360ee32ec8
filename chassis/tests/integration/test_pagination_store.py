"""Paging through a real store: stable order, ties broken by id, forged cursors refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chassis.pagination import InvalidCursor, fetch_page

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(mongo_client, database_prefix):
    return mongo_client[database_prefix + "paging"]


def test_fetch_page_walks_newest_first_with_ties_on_time(db) -> None:
    # Two items share each timestamp, so the id breaks ties.
    db.things.insert_many(
        [{"_id": f"t{i}", "created_at": START + timedelta(seconds=i // 2), "kind": "a"} for i in range(7)]
    )
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = fetch_page(db.things, {"kind": "a"}, "created_at", limit=3, cursor=cursor, descending=True,
                          to_item=lambda doc: doc["_id"])
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]


def test_fetch_page_has_no_cursor_when_everything_fits(db) -> None:
    db.things.insert_many([{"_id": "x", "created_at": START}, {"_id": "y", "created_at": START}])
    page = fetch_page(db.things, {}, "created_at", limit=2, descending=True, to_item=lambda doc: doc["_id"])
    assert page.items == ["y", "x"]
    assert page.next_cursor is None


def test_fetch_page_refuses_a_forged_cursor(db) -> None:
    with pytest.raises(InvalidCursor):
        fetch_page(db.things, {}, "created_at", limit=2, cursor="garbage!")


def test_an_ascending_page_after_a_cursor_skips_what_was_seen(db) -> None:
    db.visits.insert_many([{"_id": f"v{i}", "start_at": START + timedelta(days=i)} for i in range(5)])
    first = fetch_page(db.visits, {}, "start_at", limit=2)
    second = fetch_page(db.visits, {}, "start_at", limit=2, cursor=first.next_cursor)
    assert [d["_id"] for d in first.items + second.items] == ["v0", "v1", "v2", "v3"]
