"""Helpers for the project's tests (no fakes of our own parts: real broker, real store)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import eventlet


def wait_for[T](condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        eventlet.sleep(interval)


@contextmanager
def fresh_databases(mongo_uri: str, tag: str = "t") -> Iterator[str]:
    """A new database prefix for a test (or module); every database under it is dropped afterwards,
    which keeps the store small (mongoeco writes slow down as collections grow)."""
    import pymongo

    prefix = f"{tag}{uuid.uuid4().hex[:10]}_"
    yield prefix
    client = pymongo.MongoClient(mongo_uri)
    try:
        for name in client.list_database_names():
            if name.startswith(prefix):
                client.drop_database(name)
    finally:
        client.close()
