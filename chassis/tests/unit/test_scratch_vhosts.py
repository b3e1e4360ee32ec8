"""The test vhosts outlast a management API that drops connections, a vhost that cannot be made fails only the
test that waits for it (nameko's pipeline stopped for good, and every later test hung), and every vhost the
pipeline makes is deleted when the run ends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import eventlet
import pytest

from chassis.testing import ScratchVhosts, VhostPipeline


class FlakyManagementApi(BaseHTTPRequestHandler):
    """Closes the first ``drops`` connections without an answer, then accepts every request."""

    drops = 0
    seen: list[str] = []

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(f"PUT {self.path}")
        if type(self).drops > 0:
            type(self).drops -= 1
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    FlakyManagementApi.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyManagementApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://guest:guest@127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_dropped_connection_is_tried_again_and_the_vhost_is_made(api):
    FlakyManagementApi.drops = 2
    vhosts = ScratchVhosts(api, "guest", give_up_seconds=10)

    name = vhosts.create("nameko_test_")

    assert name.startswith("nameko_test_")
    assert FlakyManagementApi.seen.count(f"PUT /api/vhosts/{name}") == 3
    assert FlakyManagementApi.seen[-1] == f"PUT /api/permissions/{name}/guest"


def test_a_vhost_that_cannot_be_made_fails_its_test_and_the_next_test_gets_one(api):
    FlakyManagementApi.drops = 1000
    vhosts = ScratchVhosts(api, "guest", give_up_seconds=1)

    with VhostPipeline(vhosts, ahead=1).run() as pipeline:
        with pytest.raises(RuntimeError, match="no vhost could be made"):
            with pipeline.get():
                pass
        FlakyManagementApi.drops = 0
        with pipeline.get() as made:
            assert made.startswith("nameko_test_")


class CountingVhosts:
    """Makes names (slowly, as the API does) and notes what was made and deleted."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.deleted: list[str] = []

    def create(self) -> str:
        eventlet.sleep(0.01)
        self.made.append(f"nameko_test_{len(self.made)}")
        return self.made[-1]

    def delete(self, name: str) -> None:
        self.deleted.append(name)


def test_every_vhost_made_is_deleted_the_ones_made_ahead_and_the_one_being_made_at_the_end_too():
    vhosts = CountingVhosts()

    with eventlet.Timeout(10), VhostPipeline(vhosts, ahead=3).run() as pipeline:  # type: ignore[arg-type]
        with pipeline.get() as used:
            assert used == "nameko_test_0"
        eventlet.sleep(0.1)  # three more are made ahead; the maker waits with a fourth

    assert len(vhosts.made) >= 4 and sorted(vhosts.deleted) == sorted(vhosts.made)
