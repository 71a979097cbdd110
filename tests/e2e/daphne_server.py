"""A real daphne serving the app in a thread of the test process, for tests of the websocket's
whole lifetime (daphne's disconnect and shutdown path is not in channels' ApplicationCommunicator).

Twisted's reactor runs once per process: the server starts at its first use and serves the rest
of the session. In the test process it shares the test database (SQLite's shared in-memory one
too) and the test's view of `settings`.
"""

import threading
import time
from dataclasses import dataclass

# daphne.server installs the asyncio reactor (already done by Django's app registry: "daphne" is
# an installed app), so import it before twisted's reactor.
from daphne.server import Server, twisted_loop


@dataclass(frozen=True)
class RunningDaphne:
    server: Server
    ws_url: str
    # The event loop the app runs on (channels' in-memory layer is only heard from it).
    loop: object


_running: RunningDaphne | None = None
_lock = threading.Lock()


def running_daphne(*, application_close_timeout: float = 10) -> RunningDaphne:
    """The session's daphne on a free loopback port (started on first use, with production's defaults)."""
    global _running
    with _lock:
        if _running is None:
            _running = _start(application_close_timeout=application_close_timeout)
        return _running


def _start(*, application_close_timeout: float) -> RunningDaphne:
    from config.asgi import application

    server = Server(
        application=application,
        endpoints=["tcp:port=0:interface=127.0.0.1"],
        signal_handlers=False,
        application_close_timeout=application_close_timeout,
        verbosity=0,
    )
    thread = threading.Thread(target=server.run, name="daphne", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.listening_addresses:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("daphne did not start listening")
        time.sleep(0.02)
    host, port = server.listening_addresses[0]
    return RunningDaphne(server=server, ws_url=f"ws://{host}:{port}/graphql/", loop=twisted_loop)
