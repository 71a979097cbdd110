"""The address an admin login comes from, for the lockout's username+address pairs."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """The peer, or, when the peer is one of ADMIN_TRUSTED_PROXIES, the rightmost X-Forwarded-For
    hop that is not one of them (each proxy appends the address it saw; anything further left the
    client could have written itself).

    django-ipware's proxy settings are not used for this: they check hops inside the header but
    never that the peer itself is a proxy, so a client reaching daphne directly could name a new
    address on every attempt and never reach the limit of any one username+address pair.
    """
    remote_addr = request.META.get("REMOTE_ADDR")
    proxies = [ipaddress.ip_network(network, strict=False) for network in settings.ADMIN_TRUSTED_PROXIES]
    if not _is_one_of(remote_addr, proxies):
        return remote_addr
    source = remote_addr
    for hop in reversed([hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]):
        ip = _parse_ip(hop)
        if ip is None:
            # Not an address where our proxy wrote one: keep the last hop a proxy vouched for.
            break
        source = str(ip)
        if not _is_one_of(source, proxies):
            break
    return source


def _is_one_of(address: str | None, networks: list) -> bool:
    ip = _parse_ip(address)
    return ip is not None and any(ip.version == network.version and ip in network for network in networks)


def _parse_ip(address: str | None):
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
