"""The test vhosts outlast a management API that drops connections, and a vhost that cannot be made fails
only the test that waits for it (nameko's pipeline stopped for good, and every later test hung)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
