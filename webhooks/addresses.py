"""Where a notification came from: the peer, or, behind the service's own proxies, the hop
that reached the first of them."""

from collections.abc import Iterable

from config.client_addresses import hops_to_the_client


def notification_source(*, remote_addr: str | None, forwarded_for: str | None, proxies: Iterable[str]) -> str | None:
    """The sender's address as written: the hop that reached our first proxy, or, when that hop is
    unreadable, what it says (an unknown source, counted as such; never the proxy's address)."""
    hops = hops_to_the_client(remote_addr=remote_addr, forwarded_for=forwarded_for, proxies=proxies)
    return hops[-1] if hops else None
