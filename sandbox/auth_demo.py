"""A demo of the cinema's Auth service receiving billing's events, served beside the sandbox at
/auth-demo/ so that the local run shows deliveries working without another service.

POST /auth-demo/ is the endpoint: it verifies the Standard Webhooks signature with the
`standardwebhooks` library (the secret is the local run's, generated into var/), remembers what
came (in memory, the latest MAX_KEPT), and answers 200 (401 when the signature does not verify).
GET /auth-demo/ shows what came. Fault switches make it fail like a real receiver, so the retries,
the ordering and the 410 rule can be watched: POST /auth-demo/faults {"effect": "down" | "error_500"
| "slow" | "gone_410", "times": n (omit: until cleared), "delay": seconds (slow)}; DELETE
/auth-demo/faults clears them. The switches need the shop's Basic credentials, as /sandbox/ does.
"""

import json
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_KEPT = 200


class AuthDemoEffect(StrEnum):
    DOWN = "down"  # the connection is closed without an answer, as when the service is not there
    ERROR_500 = "error_500"
    SLOW = "slow"  # answers 200 after `delay` seconds (longer than billing's read timeout: a failure)
    GONE_410 = "gone_410"  # "this endpoint is gone": billing disables it


@dataclass
class AuthDemoFault:
    effect: AuthDemoEffect
    times: int | None = 1
    delay: float = 15.0

    def __post_init__(self) -> None:
        self.effect = AuthDemoEffect(self.effect)
        if self.times is not None and (not isinstance(self.times, int) or self.times < 1):
            raise ValueError("times is a whole number of requests, 1 or more (omit it: until cleared)")
        if not isinstance(self.delay, int | float) or not 0 <= self.delay <= 120:
            raise ValueError("delay is 0 to 120 seconds")


@dataclass(frozen=True)
class ReceivedEvent:
    received_at: datetime
    webhook_id: str
    verified: bool
    duplicate: bool
    type: str = ""
    viewer_id: str = ""
    version: str = ""
    error: str = ""


class AuthDemo:
    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self._lock = threading.Lock()
        self._received: deque[ReceivedEvent] = deque(maxlen=MAX_KEPT)
        self._seen: deque[str] = deque(maxlen=10 * MAX_KEPT)
        self._fault: AuthDemoFault | None = None

    def set_fault(self, fault: AuthDemoFault) -> None:
        with self._lock:
            self._fault = fault

    def clear(self) -> None:
        with self._lock:
            self._fault = None

    def reset(self) -> None:
        with self._lock:
            self._fault = None
            self._received.clear()
            self._seen.clear()

    def describe(self) -> dict:
        with self._lock:
            fault = self._fault
            return {"fault": None if fault is None else {"effect": fault.effect, "times": fault.times}}

    def received(self) -> list[ReceivedEvent]:
        with self._lock:
            return list(reversed(self._received))

    def take_fault(self) -> AuthDemoFault | None:
        with self._lock:
            fault = self._fault
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = None
            return fault

    def receive(self, headers, body: bytes) -> tuple[int, str]:
        """Verify and record a message; the status and text to answer."""
        webhook_id = headers.get("webhook-id") or ""
        now = datetime.now(UTC)
        if not self.secret:
            return 503, "the demo has no secret configured"
        try:
            message = Webhook(self.secret).verify(body, {key.lower(): value for key, value in headers.items()})
        except (WebhookVerificationError, ValueError) as error:
            self._keep(ReceivedEvent(now, webhook_id, verified=False, duplicate=False, error=str(error)))
            return 401, f"signature not verified: {error}"
        data = message.get("data") if isinstance(message, dict) else None
        data = data if isinstance(data, dict) else {}
        with self._lock:
            duplicate = webhook_id in self._seen
            if not duplicate:
                self._seen.append(webhook_id)
        self._keep(
            ReceivedEvent(
                now,
                webhook_id,
                verified=True,
                duplicate=duplicate,
                type=str(message.get("type", "")),
                viewer_id=str(data.get("viewer_id", "")),
                version=str(data.get("version", "")),
            )
        )
        return 200, json.dumps({"received": webhook_id, "duplicate": duplicate})

    def _keep(self, event: ReceivedEvent) -> None:
        with self._lock:
            self._received.append(event)


def fault_from_body(body: dict) -> AuthDemoFault:
    unknown = set(body) - {"effect", "times", "delay"}
    if unknown or "effect" not in body:
        raise ValueError('give {"effect": down | error_500 | slow | gone_410, "times"?: n, "delay"?: seconds}')
    return AuthDemoFault(**body)
