"""Test vhosts on the machine's RabbitMQ: a killed run's leftovers are removed, a live run's are kept."""

from __future__ import annotations

import requests

from chassis.testing import ScratchVhosts

API = "http://guest:guest@127.0.0.1:15672"


def names() -> set[str]:
    return {vhost["name"] for vhost in requests.get(f"{API}/api/vhosts", timeout=30).json()}


def test_leftovers_of_a_killed_run_are_removed_and_this_runs_vhosts_are_kept():
    vhosts = ScratchVhosts(API, "guest")
    mine = vhosts.create("nameko_test_")
    killed_runs = "nameko_test_killedrun" + mine[-6:]
    requests.put(f"{API}/api/vhosts/{killed_runs}", json={"description": "test run pid 999999999"},
                 timeout=30).raise_for_status()
    try:
        removed = vhosts.remove_orphans()

        assert killed_runs in removed
        assert mine in names() and killed_runs not in names()
    finally:
        vhosts.delete(mine)
    assert mine not in names()
