"""Helpers for the project's tests (no fakes of our own parts: real broker, real store)."""

from __future__ import annotations

import os
import random
import string
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit

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


class ScratchVhosts:
    """Vhosts for tests, made and removed through RabbitMQ's management API.

    The API drops a connection or answers 5xx now and then while the broker is busy deleting the previous
    test's quorum queues. nameko's own client has no timeout and no second try, so one dropped connection
    used to stop the vhost pipeline and leave every later test waiting for a vhost until pytest's timeout
    killed the whole run. Here every request has a timeout and is tried again on a new connection.

    Each vhost's description names the test process that made it, so ``remove_orphans`` deletes only the
    leftovers of runs that were killed (their quorum queues slow the broker down for everyone after).
    """

    PREFIXES = ("nameko_test_", "gw_if_", "e2e_")

    def __init__(self, api_uri: str, user: str, give_up_seconds: float = 90.0, request_timeout: float = 60.0):
        parts = urlsplit(api_uri)
        self._base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api"
        self._auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        self._user = user
        self._give_up_seconds = give_up_seconds
        self._request_timeout = request_timeout
        self._owner = f"test run pid {os.getpid()}"

    def create(self, prefix: str = "nameko_test_") -> str:
        name = prefix + "".join(random.choices(string.ascii_lowercase, k=10))
        self._request("PUT", f"vhosts/{quote(name, safe='')}", json={"description": self._owner})
        self._request("PUT", f"permissions/{quote(name, safe='')}/{quote(self._user, safe='')}",
                      json={"configure": ".*", "write": ".*", "read": ".*"})
        return name

    def delete(self, name: str) -> None:
        """Deletes the vhost and closes kombu's pooled connections to it (as nameko's pipeline does)."""
        from kombu.pools import connections

        self._request("DELETE", f"vhosts/{quote(name, safe='')}", gone_is_fine=True)
        for key, pool in list(connections.items()):
            if isinstance(key, tuple) and len(key) > 4 and key[4] == name:
                pool.force_close_all()

    def remove_orphans(self) -> list[str]:
        """Deletes test vhosts whose run is gone: made by a process no longer alive, or by older code."""
        orphans = [vhost["name"] for vhost in self._request("GET", "vhosts")
                   if vhost["name"].startswith(self.PREFIXES) and not _made_by_a_live_process(vhost)]
        for name in orphans:
            self._request("DELETE", f"vhosts/{quote(name, safe='')}", gone_is_fine=True)
        return orphans

    def _request(self, method: str, path: str, *, json: object = None, gone_is_fine: bool = False) -> Any:
        import requests

        deadline = time.monotonic() + self._give_up_seconds
        delay = 0.5
        while True:
            try:
                response = requests.request(method, f"{self._base}/{path}", json=json, auth=self._auth,
                                            timeout=self._request_timeout)
                if response.status_code == 404 and gone_is_fine:
                    return None
                if response.status_code < 500:
                    response.raise_for_status()
                    return response.json() if response.content else None
                failure = f"{response.status_code} {response.text[:200]}"
            except (requests.ConnectionError, requests.Timeout) as error:
                failure = repr(error)
            if time.monotonic() + delay > deadline:
                raise RuntimeError(f"RabbitMQ management API: {method} {path} failed for "
                                   f"{self._give_up_seconds:.0f}s; last: {failure}")
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


def _made_by_a_live_process(vhost: dict[str, Any]) -> bool:
    description = vhost.get("description") or ""
    if not description.startswith("test run pid "):
        return False
    try:
        os.kill(int(description.rsplit(" ", 1)[1]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


_MAKER_STOPPED = object()


class VhostPipeline:
    """Vhosts made ahead of the tests that need them (a few at a time) and deleted behind them, in background
    greenthreads; the interface of nameko's ``vhost_pipeline`` fixture. A vhost that could not be made is
    handed to the waiting test as an error, so that test fails and the pipeline goes on."""

    def __init__(self, vhosts: ScratchVhosts, ahead: int = 3) -> None:
        self._vhosts = vhosts
        self._ready: eventlet.Queue = eventlet.Queue(maxsize=ahead)
        self._trash: eventlet.Queue = eventlet.Queue()
        self._running = False

    @contextmanager
    def run(self) -> Iterator[VhostPipeline]:
        self._running = True
        eventlet.spawn(self._make)
        remover = eventlet.spawn(self._remove)
        try:
            yield self
        finally:
            self._running = False
            self._ready.resize(None)  # the maker finishes the vhost it is making, then says it has stopped
            while (made := self._ready.get()) is not _MAKER_STOPPED:  # every vhost made is deleted
                self._trash.put(made)
            self._trash.put(None)
            remover.wait()

    @contextmanager
    def get(self) -> Iterator[str]:
        made = self._ready.get()
        if isinstance(made, Exception):
            raise RuntimeError("no vhost could be made for this test") from made
        try:
            yield made
        finally:
            self._trash.put(made)

    def _make(self) -> None:
        while self._running:
            try:
                made: str | Exception = self._vhosts.create()
            except Exception as error:
                made = error
            self._ready.put(made)
        self._ready.put(_MAKER_STOPPED)

    def _remove(self) -> None:
        while (name := self._trash.get()) is not None:
            if isinstance(name, str):
                try:
                    self._vhosts.delete(name)
                except Exception as error:  # a leftover vhost is removed by the next run's remove_orphans
                    print(f"vhost {name} left behind: {error}", file=sys.stderr)
