"""The outbound allow list: internal addresses a deployment may still reach.

In core because settings validate it when they load (a typo must fail then,
not when a replica starts), and the safe fetcher enforces it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def unmap(address: IPAddress) -> IPAddress:
    # The kernel sends ::ffff:a.b.c.d to a.b.c.d: judge (and allow) it as that.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_allow_entry(entry: str) -> tuple[IPNetwork, int | None]:
    text, port_text = entry.strip(), None
    if text.startswith("["):
        text, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(
                f"outbound allow entry {entry!r}: write an IPv6 address with a port as [addr]:port"
            )
        if rest:
            port_text = rest[1:]
    elif text.count(":") == 1:
        text, port_text = text.split(":")
    try:
        # strict: "10.0.0.1/8" (host bits set) is more likely a typo than intent.
        network = ipaddress.ip_network(text)
    except ValueError as exc:
        raise ValueError(f"outbound allow entry {entry!r}: {exc}") from None
    if port_text is None:
        return network, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(
            f"outbound allow entry {entry!r}: port {port_text!r} is not a number from 1 to 65535"
        )
    return network, int(port_text)


@dataclass(frozen=True)
class AllowList:
    """Parsed OutboundSettings.allow entries: (network, port or None for any port)."""

    entries: tuple[tuple[IPNetwork, int | None], ...] = ()

    @classmethod
    def parse(cls, entries: list[str]) -> AllowList:
        return cls(tuple(_parse_allow_entry(entry) for entry in entries))

    def allows(self, address: IPAddress, port: int) -> bool:
        address = unmap(address)
        return any(
            network.version == address.version
            and address in network
            and allowed_port in (None, port)
            for network, allowed_port in self.entries
        )
