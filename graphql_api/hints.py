"""Sending live hints without making billing's caller wait for the channel layer.

Billing's after-commit listeners run in the caller's thread: a viewer's request, a webhook, a
renewal batch. A hint is best effort (the subscription re-reads the payment anyway), so it is
handed to an event loop and the caller goes on at once:

- from inside a running event loop: a task on that loop;
- from a thread that sync_to_async runs for an event loop (a request, a websocket's work in
  daphne): a task on that loop, the one the process's websockets live on, with its one pool of
  Redis connections;
- from anywhere else (a django-q2 worker, a command): one sender thread per process with a loop
  of its own, made on first use.

Each send is bounded by HINT_SEND_TIMEOUT and at most MAX_HINTS_IN_FLIGHT are under way per loop;
past that, hints are dropped (and counted). Nothing here ever blocks the caller on Redis.
"""

import asyncio
import logging
import os
import threading
from collections.abc import Callable

from asgiref.sync import SyncToAsync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# A hint later than this is no use: the subscription's re-read comes soon after anyway.
HINT_SEND_TIMEOUT = 2.0
# Per loop. A frozen Redis holds each send HINT_SEND_TIMEOUT: this many a process can have waiting.
MAX_HINTS_IN_FLIGHT = 500

_in_flight: dict[asyncio.AbstractEventLoop, set[asyncio.Task]] = {}
_dropped = 0


def hint_send(group: str, message: dict) -> None:
    """Send `message` to the channel-layer `group` in the background; return at once."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        _start(loop, group, message)
        return
    serving = _serving_loop()
    if serving is not None:
        serving.call_soon_threadsafe(_start, serving, group, message)
        return
    _process_sender().submit(lambda sender_loop: _start(sender_loop, group, message))


def hints_dropped() -> int:
    """Hints dropped since the process started because too many were under way (a stuck Redis)."""
    return _dropped


# The ASGI server's loops (config.asgi marks each on its first request). Only these outlive the
# request: a loop that async_to_sync makes for one request (Django's test client, a WSGI server)
# ends with it, and its shutdown would wait for a hint stuck on a frozen Redis, whose client gives
# up only at its socket timeout, however early the hint's own timeout cancels it.
_server_loops: set[asyncio.AbstractEventLoop] = set()


def hint_mark_server_loop() -> None:
    """Call from the ASGI application, on its server's event loop."""
    _server_loops.add(asyncio.get_running_loop())


def _serving_loop() -> asyncio.AbstractEventLoop | None:
    """The ASGI server's event loop this thread works for under sync_to_async (asgiref keeps it to
    run async_to_sync); None for any other loop."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    if loop not in _server_loops:
        return None
    return loop if loop.is_running() and not loop.is_closed() else None


def _start(loop: asyncio.AbstractEventLoop, group: str, message: dict) -> None:
    global _dropped
    tasks = _in_flight.setdefault(loop, set())
    if len(tasks) >= MAX_HINTS_IN_FLIGHT:
        _dropped += 1
        if _dropped % 100 == 1:
            logger.warning("Live hints are being dropped (%d so far): the channel layer is not keeping up", _dropped)
        return
    task = loop.create_task(_send(group, message))
    tasks.add(task)
    task.add_done_callback(lambda done: _finished(loop, done))


async def _send(group: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await asyncio.wait_for(layer.group_send(group, message), HINT_SEND_TIMEOUT)


def _finished(loop: asyncio.AbstractEventLoop, task: asyncio.Task) -> None:
    tasks = _in_flight.get(loop)
    if tasks is not None:
        tasks.discard(task)
        if not tasks:
            del _in_flight[loop]
    if not task.cancelled() and task.exception() is not None:
        logger.warning("A live payment hint was not sent: %r", task.exception())


class _Sender:
    """A daemon thread running an event loop for hints sent from outside any loop."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self.loop.run_forever, name="live-hints", daemon=True)
        thread.start()

    def submit(self, start: Callable[[asyncio.AbstractEventLoop], None]) -> None:
        self.loop.call_soon_threadsafe(start, self.loop)


_sender: _Sender | None = None
_sender_lock = threading.Lock()


def _process_sender() -> _Sender:
    """This process's sender (a forked worker makes its own: threads do not survive a fork)."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender.pid != os.getpid():
            _sender = _Sender()
        return _sender
