"""A service receiving billing's events, as Auth would: a real HTTP server in a thread that
verifies each message with `standardwebhooks` and hands each verified webhook-id once to its
handler. Switches make it fail the way a real one does."""

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    error: str = ""

    @property
    def message(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: str
    # Every request as it came (duplicates included) and what the handler got (once per webhook-id).
    requests: list[Received] = field(default_factory=list)
    handled: list[dict] = field(default_factory=list)
    # Answer this status to the next `fail_times` requests (None: until changed).
    fail_status: int = 500
    fail_times: int | None = 0
    # While set, a request waits here before it is answered (a receiver that hangs).
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        self.arrived.set()
        if self.hold is not None:
            self.hold.wait(30)
        with self._lock:
            if self.fail_times is None or self.fail_times > 0:
                if self.fail_times:
                    self.fail_times -= 1
                self.requests.append(Received(headers, body, verified=False, error="failed on purpose"))
                return self.fail_status
            try:
                message = Webhook(self.secret).verify(body, headers)
            except WebhookVerificationError as error:
                self.requests.append(Received(headers, body, verified=False, error=str(error)))
                return 400
            self.requests.append(Received(headers, body, verified=True))
            if headers["webhook-id"] not in self._seen:
                self._seen.add(headers["webhook-id"])
                self.handled.append(message)
            return 200

    def handled_types(self) -> list[str]:
        return [message["type"] for message in self.handled]


def serve(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = receiver.answer({key.lower(): value for key, value in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/billing-events"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s")
        time.sleep(0.02)
    return result
