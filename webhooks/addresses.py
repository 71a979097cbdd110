"""Where a notification came from: the peer, or, behind the service's own proxies, the hop
that reached the first of them."""

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def notification_source(*, remote_addr: str | None, forwarded_for: str | None, proxies: Iterable[str]) -> str | None:
    """The sender's address. X-Forwarded-For is read only when the peer is one of our proxies,
    and from the right: each proxy appends the address it saw, so the rightmost hop that is not
    one of ours is the first the client could not have written (everything left of it it could)."""
    proxies = list(proxies)
    if not address_in(remote_addr, proxies):
        return remote_addr
    source = remote_addr
    for hop in reversed([hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]):
        source = hop
        if not address_in(hop, proxies):
            break
    return source


def address_in(address: str | None, networks: Iterable[str]) -> bool:
    ip = parse_ip(address)
    return ip is not None and any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


def parse_ip(address: str | None) -> IPAddress | None:
    """The address, an IPv4-mapped IPv6 one as the IPv4 address it carries; None if it is none."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
