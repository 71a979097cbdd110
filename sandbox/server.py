"""The sandbox over HTTP: a threaded server plus a background loop for notifications and expiries."""

import contextlib
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

from sandbox.app import Request, Response, SandboxApp
from sandbox.config import SandboxConfig
from sandbox.emulator import Emulator
from sandbox.errors import ApiError, invalid_request
from sandbox.faults import Faults
from sandbox.notifier import Notifier
from sandbox.store import Store

logger = logging.getLogger(__name__)

# The API's JSON and the payment page's form are a few KiB: a larger body is no client of ours.
MAX_BODY_BYTES = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    server: "_HTTPServer"
    server_version = "YooKassaSandbox/1.0"

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def setup(self) -> None:
        # Read here, not fixed on the class: socketserver applies it to the connection in setup().
        self.timeout = self.server.app.config.request_timeout
        super().setup()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if isinstance(body, Response):
            # What is left of the request on the socket is unknown: answer and hang up.
            self.close_connection = True
            self._answer(body)
            return
        request = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        try:
            response = self.server.app(request)
        except Exception:
            logger.exception("sandbox failed on %s %s", self.command, self.path)
            response = Response.error(ApiError(500, "internal_server_error", "Internal server error"))
        if response.delay:
            time.sleep(response.delay)
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._answer(response)

    def _read_body(self) -> bytes | Response:
        """The body the request's Content-Length announces, or the error to answer instead."""
        declared = {value.strip(" \t") for value in self.headers.get_all("Content-Length") or []}
        if not declared:
            return b""
        # Digits only: int() would also take "-1" (then read to the end of the stream), "+5" or "1_0".
        if len(declared) > 1 or not all(value.isascii() and value.isdigit() for value in declared):
            return Response.error(invalid_request("Content-Length must be one whole number of bytes"))
        length = int(declared.pop())
        if length > MAX_BODY_BYTES:
            return Response.error(
                ApiError(413, "invalid_request", f"The request body is larger than {MAX_BODY_BYTES} bytes")
            )
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            body = b""
        if len(body) < length:
            return Response.error(ApiError(408, "invalid_request", "The body stopped short of its Content-Length"))
        return body

    def _answer(self, response: Response) -> None:
        try:
            if response.trickle:
                self._trickle(response)
                return
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            logger.info("client went away before the answer to %s %s", self.command, self.path)

    def _trickle(self, response: Response) -> None:
        """The whole answer, from the status line on, one byte at a time."""
        self.log_request(response.status)
        headers = {"Content-Type": response.content_type, "Content-Length": str(len(response.body)), **response.headers}
        head = f"{self.protocol_version} {response.status} {self.responses[response.status][0]}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        answer = head.encode("latin-1") + response.body
        for index in range(len(answer)):
            self.wfile.write(answer[index : index + 1])
            self.wfile.flush()
            time.sleep(response.trickle)

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    app: SandboxApp


class SandboxServer:
    """The emulator, its HTTP server and its background loop; a context manager for tests."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.state_file)
        self.store.requeue_interrupted_notifications()
        self.faults = Faults()
        self._wake = threading.Event()
        self.notifier = Notifier(config, self.store, self.faults, on_queued=self._wake.set)
        self.emulator = Emulator(config, self.store, self.notifier)
        self.app = SandboxApp(config, self.store, self.emulator, self.faults)
        self._httpd = _HTTPServer((config.host, config.port), _Handler)
        self._httpd.app = self.app
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        if config.public_url is None:
            # Listening on every interface, it is reached on this machine through loopback.
            config.public_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"  # noqa: S104
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def api_url(self) -> str:
        return f"{self.url}/v3"

    def start(self) -> Self:
        """Serve and run the background loop in daemon threads."""
        for target, name in ((self._httpd.serve_forever, "sandbox-http"), (self._loop, "sandbox-loop")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def serve_forever(self) -> None:
        """Run in the foreground until interrupted (the management command)."""
        self.start()
        try:
            while not self._stopping.wait(1):
                pass
        finally:
            self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def tick(self) -> None:
        """Expire what is overdue and deliver what is due; the loop calls it, tests may too."""
        self.emulator.expire_due()
        self.notifier.deliver_due()

    def reset(self) -> None:
        self.app.reset()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.tick()
            except Exception:
                logger.exception("sandbox background loop failed; going on")
            due_in = self.notifier.next_due_in()
            wait = self.config.tick_interval if due_in is None else min(due_in, self.config.tick_interval)
            self._wake.wait(max(wait, 0.005))
