"""The client's address behind trusted proxies: X-Forwarded-For is believed only from them, right to left."""

from __future__ import annotations

import pytest

from gateway.clients import TrustedProxies

PROXIES = TrustedProxies.parse(["10.0.0.0/8", "192.0.2.10", "2001:db8::/32"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("198.51.100.7", [], "198.51.100.7"),  # no proxy
        ("198.51.100.7", ["203.0.113.5"], "198.51.100.7"),  # an untrusted peer's header is ignored
        ("10.1.2.3", [], "10.1.2.3"),  # our proxy, forwarding for nobody
        ("10.1.2.3", ["203.0.113.5"], "203.0.113.5"),
        ("10.1.2.3", ["1.1.1.1, 203.0.113.5"], "203.0.113.5"),  # the client's own claim (left) proves nothing
        ("10.1.2.3", ["203.0.113.5, 192.0.2.10"], "203.0.113.5"),  # two of our proxies in a row
        ("10.1.2.3", ["1.1.1.1", "203.0.113.5, 10.9.9.9"], "203.0.113.5"),  # several headers: one list
        ("10.1.2.3", ["10.7.7.7, 192.0.2.10"], "10.7.7.7"),  # every hop is ours: the left-most
        ("10.1.2.3", ["not-an-address, 10.7.7.7"], "10.7.7.7"),  # unreadable: the last readable hop
        ("2001:db8::1", ["2001:0db8:0:0::9, 2a00::1"], "2a00::1"),
        ("192.0.2.11", ["203.0.113.5"], "192.0.2.11"),  # a single trusted address is not its neighbours
    ],
)
def test_the_client_address(peer, forwarded_for, client):
    assert PROXIES.client_address(peer, forwarded_for) == client


def test_nobody_is_trusted_by_default():
    assert TrustedProxies.parse(None).client_address("127.0.0.1", ["203.0.113.5"]) == "127.0.0.1"
    assert TrustedProxies.parse([]).client_address("127.0.0.1", ["203.0.113.5"]) == "127.0.0.1"


def test_the_setting_may_be_comma_separated_text():
    assert TrustedProxies.parse("10.0.0.0/8, 127.0.0.1").client_address("127.0.0.1", ["203.0.113.5"]) == "203.0.113.5"


@pytest.mark.parametrize("setting", [["10.0.0.0/33"], ["proxy.internal"], "10.0.0.1,bad"])
def test_a_bad_setting_stops_the_gateway(setting):
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        TrustedProxies.parse(setting)
