"""Who a request came from, for the webhook's and the admin login's limits alike.

Shared here, under config/, because neither app may import the other.
"""

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# One host owns a whole IPv6 /64 (SLAAC, privacy addresses): counting by address would let it
# rotate through 2^64 of them.
IPV6_GROUP_PREFIX = 64


def hops_to_the_client(*, remote_addr: str | None, forwarded_for: str | None, proxies: Iterable[str]) -> list[str]:
    """The peer, then, while the last one is one of our proxies, the X-Forwarded-For hop it
    appended, read from the right: each proxy appends the address it saw, so the first hop that is
    not one of ours is the first the client could not have written (everything left of it it
    could). The last hop may be unreadable (not an address); what to make of that is the caller's.
    """
    proxies = list(proxies)
    hops = [remote_addr] if remote_addr is not None else []
    if not address_in(remote_addr, proxies):
        return hops
    for hop in reversed([hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]):
        hops.append(hop)
        if not address_in(hop, proxies):
            break
    return hops


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


def address_group(address: str | None) -> IPNetwork | None:
    """What a limit counts by: an IPv4 address (/32), or the /64 of an IPv6 one; None if it is none."""
    ip = parse_ip(address)
    if ip is None:
        return None
    prefix = IPV6_GROUP_PREFIX if ip.version == 6 else 32
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
