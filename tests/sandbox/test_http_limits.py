"""The sandbox's HTTP server against clients that lie about their bodies, over raw sockets.

A malformed, negative or conflicting Content-Length is answered 400 at once, a huge one 413, and a
body that stops short of what it announced 408 once the request timeout passes: none of them may
drop the connection unanswered or hold a server thread waiting for bytes that never come.
"""

import base64
import json
import socket
import time
import uuid

import pytest

from sandbox.server import MAX_BODY_BYTES

# Far below the sandbox's request timeout (10 s): an answer this fast did not wait for the body.
AT_ONCE = 2.0
PAYMENT = json.dumps(
    {
        "amount": {"value": "299.00", "currency": "RUB"},
        "confirmation": {"type": "redirect", "return_url": "https://cinema.example/return"},
        "capture": True,
    }
).encode()


def _create_payment_head(sandbox, content_lengths: list[str]) -> bytes:
    credentials = base64.b64encode(f"{sandbox.config.shop_id}:{sandbox.config.secret_key}".encode()).decode()
    lines = [
        "POST /v3/payments HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Basic {credentials}",
        f"Idempotence-Key: {uuid.uuid4()}",
        "Content-Type: application/json",
        *(f"Content-Length: {value}" for value in content_lengths),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _exchange(sandbox, request: bytes, *, wait: float = 5.0) -> tuple[int, dict, bytes, float]:
    """Send `request` and read until the sandbox closes: (status, JSON body, the rest, seconds taken)."""
    host, port = sandbox.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    elapsed = time.monotonic() - started
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b":", 1) for line in header_lines)
    status, length = int(status_line.split(b" ", 2)[1]), int(headers[b"content-length"])
    return status, json.loads(body[:length]), body[length:], elapsed


@pytest.mark.parametrize(
    "content_length",
    ["abc", "-1", "-300", "+5", "1_0", "0x10", "1e3", "", "٣"],
    ids=["letters", "minus-one", "negative", "plus", "underscore", "hex", "exponent", "empty", "arabic-digit"],
)
def test_a_malformed_or_negative_content_length_is_answered_400_at_once_and_creates_nothing(sandbox, content_length):
    request = _create_payment_head(sandbox, [content_length]) + PAYMENT

    status, body, rest, elapsed = _exchange(sandbox, request)

    assert status == 400
    assert body["code"] == "invalid_request"
    assert body["description"] == "Content-Length must be one whole number of bytes"
    assert elapsed < AT_ONCE
    assert rest == b""
    assert sandbox.store.count_payments() == 0


def test_two_different_content_lengths_are_answered_400_and_create_nothing(sandbox):
    request = _create_payment_head(sandbox, [str(len(PAYMENT)), str(len(PAYMENT) - 1)]) + PAYMENT

    status, body, _, elapsed = _exchange(sandbox, request)

    assert status == 400
    assert body["code"] == "invalid_request"
    assert elapsed < AT_ONCE
    assert sandbox.store.count_payments() == 0


def test_a_content_length_over_the_limit_is_answered_413_before_any_body_is_read(sandbox):
    request = _create_payment_head(sandbox, [str(MAX_BODY_BYTES + 1)])

    status, body, _, elapsed = _exchange(sandbox, request)

    assert status == 413
    assert body["description"] == f"The request body is larger than {MAX_BODY_BYTES} bytes"
    assert elapsed < AT_ONCE
    assert sandbox.store.count_payments() == 0


def test_a_body_shorter_than_its_content_length_is_answered_408_after_the_request_timeout(sandbox, monkeypatch):
    monkeypatch.setattr(sandbox.config, "request_timeout", 0.5)
    request = _create_payment_head(sandbox, [str(len(PAYMENT) + 100)]) + PAYMENT

    # The client keeps its side open: only the sandbox's timeout can end the wait.
    status, body, _, elapsed = _exchange(sandbox, request)

    assert status == 408
    assert body["description"] == "The body stopped short of its Content-Length"
    assert 0.5 <= elapsed < AT_ONCE
    assert sandbox.store.count_payments() == 0


def test_a_request_with_an_honest_content_length_still_creates_the_payment(sandbox):
    request = _create_payment_head(sandbox, [f" {len(PAYMENT)} "]) + PAYMENT

    status, body, _, _ = _exchange(sandbox, request)

    assert status == 200
    assert body["status"] == "pending"
    assert sandbox.store.count_payments() == 1
