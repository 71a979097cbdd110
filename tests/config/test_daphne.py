"""daphne started as docker-compose.yml starts it (the Dockerfile and Procfile.local use the same
flags, test_docker_compose.py checks): what a client sees of the server itself, over raw sockets.
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.config.test_docker_compose import every_daphne_argv

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30
_LISTENING = re.compile(r"Listening on TCP address 127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="module")
def daphne_port():
    """A daphne process with compose's flags on a free loopback port, serving the test settings."""
    _, *flags = every_daphne_argv()["docker-compose.yml"]
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0", *flags]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        port = None
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            if match := _LISTENING.search(line):
                port = int(match.group(1))
        assert port, "daphne did not start listening"
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()


def response_head(port: int, request: bytes) -> tuple[int, dict[str, str]]:
    """Send `request` and read the answer's status and headers (lower-cased names)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := connection.recv(65536)):
            received += chunk
    status_line, *header_lines = received.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split(" ", 2)[1]), headers


def test_an_http_answer_names_no_server_and_carries_the_security_headers(daphne_port):
    status, headers = response_head(daphne_port, b"GET /no-such-page HTTP/1.1\r\nHost: localhost\r\n\r\n")

    assert status == 404
    assert "server" not in headers
    assert "default-src 'none'" in headers["content-security-policy"].split("; ")
    assert headers["x-content-type-options"] == "nosniff"


def test_a_websocket_handshake_names_no_server(daphne_port):
    handshake = (
        b"GET /graphql/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
    )

    status, headers = response_head(daphne_port, handshake)

    assert status == 101
    assert headers["sec-websocket-protocol"] == "graphql-transport-ws"
    assert "server" not in headers
