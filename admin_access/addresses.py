"""The address an admin login comes from, for the lockout's username+address pairs."""

from django.conf import settings
from django.http import HttpRequest

from config.client_addresses import address_group, hops_to_the_client, parse_ip


def client_address(request: HttpRequest) -> str | None:
    """The peer, or, when the peer is one of ADMIN_TRUSTED_PROXIES, the rightmost X-Forwarded-For
    hop that is not one of them; an IPv6 client as its /64, written as a plain address
    (`2001:db8:1:2::`, since axes stores a GenericIPAddressField), so that one host cannot rotate
    through its 2^64 addresses for a fresh count on each guess.

    A hop that is not an address, where our proxy wrote one, is not believed: the last hop a proxy
    vouched for stands instead. django-ipware's proxy settings are not used: they check hops inside
    the header but never that the peer itself is a proxy, so a client reaching daphne directly
    could name a new address on every attempt.
    """
    remote_addr = request.META.get("REMOTE_ADDR")
    hops = hops_to_the_client(
        remote_addr=remote_addr,
        forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR"),
        proxies=settings.ADMIN_TRUSTED_PROXIES,
    )
    readable = [hop for hop in hops if parse_ip(hop) is not None]
    if not readable:
        return remote_addr
    return str(address_group(readable[-1]).network_address)
