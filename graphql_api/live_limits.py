"""Per-viewer caps on live websockets and live subscriptions, counted in this process.

A viewer needs a socket or two (a tab, a TV) and a subscription per payment being watched; the
caps stop one viewer from holding the process's loops and its one database thread (issue 9's
attack: 20 sockets x 100 subscriptions). They count per process: with N web processes behind a
balancer a viewer may hold up to N times as many. Touched only from the process's event loop.
"""

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from graphql import GraphQLError

# The close code of a websocket past LIVE_MAX_SOCKETS_PER_VIEWER (4000 + 1008, "policy violation"):
# not worth retrying at once; close another of the viewer's sockets first. Daphne sends no reason.
TOO_MANY_SOCKETS_CLOSE_CODE = 4008
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"

_sockets: Counter = Counter()
_subscriptions: Counter = Counter()


class TooManyLiveSockets(Exception):
    """The viewer already holds LIVE_MAX_SOCKETS_PER_VIEWER sockets here."""


class TooManyLiveSubscriptions(GraphQLError):
    """Shown to the client as it is, with `extensions.code = TOO_MANY_SUBSCRIPTIONS`."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Too many live subscriptions: at most {limit} at once per viewer. Complete one first.",
            extensions={"code": TOO_MANY_SUBSCRIPTIONS, "limit": limit},
        )


def socket_slot_take(*, viewer_id) -> None:
    """Count a socket of the viewer's, or refuse it past the cap; `socket_slot_give_back` when it closes."""
    limit = settings.LIVE_MAX_SOCKETS_PER_VIEWER
    if _sockets[viewer_id] >= limit:
        raise TooManyLiveSockets(f"Too many live websockets: at most {limit} at once per viewer.")
    _sockets[viewer_id] += 1


def socket_slot_give_back(*, viewer_id) -> None:
    _give_back(_sockets, viewer_id)


@contextmanager
def subscription_slot(*, viewer_id) -> Iterator[None]:
    """Held for as long as a live subscription runs; refused past the cap."""
    limit = settings.LIVE_MAX_SUBSCRIPTIONS_PER_VIEWER
    if _subscriptions[viewer_id] >= limit:
        raise TooManyLiveSubscriptions(limit)
    _subscriptions[viewer_id] += 1
    try:
        yield
    finally:
        _give_back(_subscriptions, viewer_id)


def live_counts(*, viewer_id) -> tuple[int, int]:
    """(sockets, subscriptions) the viewer holds in this process now."""
    return _sockets[viewer_id], _subscriptions[viewer_id]


def _give_back(counts: Counter, viewer_id) -> None:
    counts[viewer_id] -= 1
    if counts[viewer_id] <= 0:
        del counts[viewer_id]
