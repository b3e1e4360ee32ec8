"""Who the client is, behind the proxies we trust.

A request that reaches the gateway through a load balancer or reverse proxy comes from the proxy's address;
the proxy says whom it serves in ``X-Forwarded-For`` (each proxy appends the address it was reached from).
Anyone can send that header, so it is read only when the peer is a proxy in ``TRUSTED_PROXIES``, and then
only up to the first address that is not one of ours: the right-most untrusted address is the client (the
addresses left of it were written by the client itself and prove nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class TrustedProxies:
    """The addresses and networks whose ``X-Forwarded-For`` the gateway believes."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, setting: str | Iterable[str] | None) -> TrustedProxies:
        """From the ``TRUSTED_PROXIES`` setting: a list (or comma-separated text) of addresses and CIDRs."""
        if isinstance(setting, str):
            setting = setting.split(",")
        networks = []
        for entry in setting or ():
            try:
                networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"TRUSTED_PROXIES: {entry!r} is not an address or CIDR network") from exc
        return cls(tuple(networks))

    def trusts(self, address: str | None) -> bool:
        parsed = _address(address) if address else None
        return parsed is not None and any(parsed in network for network in self.networks)

    def client_address(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str | None:
        """The client's address: the peer's, unless the peer is trusted and says whom it forwards for."""
        if not self.trusts(peer):
            return peer
        client = peer
        hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
        for hop in reversed(hops):
            if _address(hop) is None:
                break  # unreadable: the last hop we could read is as far as we know
            client = str(_address(hop))
            if not self.trusts(client):
                break
        return client
