"""A deadline for a whole HTTP call, however slowly the answer trickles in.

urllib3's read timeout bounds each wait on the socket, not the call: a server that sends one byte
a second keeps a call going for as long as it likes, and the worker with it. Here every socket a
call opens is watched, and when the call's deadline passes a timer shuts the socket down. That
wakes a blocked read at once with an error, wherever the call is: in the TLS handshake, the
status line, the headers or the body.
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.poolmanager import ProxyManager

# The deadline of the call running in this thread (urllib3 opens a call's sockets in its thread).
_current: ContextVar["CallDeadline | None"] = ContextVar("http_call_deadline", default=None)


class CallDeadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        # Duplicates of the call's sockets: shutdown() on a duplicate stops the original too, and
        # a duplicate stays valid after TLS wrapping has taken the original's descriptor over.
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                raise TimeoutError(f"the call's {self.seconds} s were up before it had connected")
            self._sockets.append(sock.dup())

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


@contextmanager
def call_deadline(seconds: float) -> Iterator[CallDeadline]:
    """Bound what a `deadline_session()` does inside the block to `seconds` from now."""
    deadline = CallDeadline(seconds)
    token = _current.set(deadline)
    deadline._timer.start()
    try:
        yield deadline
    finally:
        _current.reset(token)
        deadline._close()


def deadline_session() -> requests.Session:
    """A requests session whose connections obey the enclosing `call_deadline()`."""
    session = requests.Session()
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _Watched:
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        deadline = _current.get()
        if deadline is not None:
            # Either way nothing was sent: the caller learns that the provider was not reached.
            try:
                deadline.watch(sock)
            except TimeoutError as exc:
                sock.close()
                raise ConnectTimeoutError(self, str(exc)) from exc
            except OSError as exc:  # no descriptor left to duplicate: unwatched, it must not go on
                sock.close()
                raise NewConnectionError(self, f"Cannot watch the connection: {exc}") from exc
        return sock


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # An HTTP(S) proxy's pools are the plain ones; a SOCKS proxy brings its own connections,
        # which are bounded by the per-read timeout only.
        if type(manager) is ProxyManager:
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager
