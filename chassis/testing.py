"""Helpers for the project's tests (no fakes of our own parts: real broker, real store)."""

from __future__ import annotations

import time
from collections.abc import Callable

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
