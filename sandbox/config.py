from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal


def utc_now() -> datetime:
    return datetime.now(UTC)


# YooKassa redelivers a notification until it gets HTTP 200, "for 24 hours from the moment the
# event happened": 7 more attempts, "24 hours from the first to the last", at these seconds after
# the event (yookassa-notes.md section 4; as waits between attempts they would add up to 25.7 h).
YOOKASSA_RETRY_SCHEDULE = (10.0, 42.0, 84.0, 168.0, 672.0, 5376.0, 86016.0)


@dataclass
class SandboxConfig:
    shop_id: str = "100500"
    secret_key: str = field(default="test_sandbox_key", repr=False)
    host: str = "127.0.0.1"
    port: int = 8001
    # Where browsers reach the sandbox (the payment page); by default the address it listens on,
    # with its real port (port 0 picks a free one).
    public_url: str | None = None
    # Where notifications go; None keeps them queued until one is set.
    notification_url: str | None = None
    # SQLite file that keeps payments across restarts; ":memory:" forgets them.
    state_file: str = ":memory:"
    shop_name: str = "Online cinema (sandbox)"
    gateway_id: str = "100700"
    notification_retry_schedule: tuple[float, ...] = YOOKASSA_RETRY_SCHEDULE
    # Multiplies every notification wait; tests compress a day of retries into a second.
    notification_time_scale: float = 1.0
    notification_timeout: float = 10.0
    # Each read and write of a request's socket waits this long at most (seconds): a client that
    # promises more body than it sends frees its thread instead of holding it forever.
    request_timeout: float = 10.0
    idempotence_ttl: timedelta = timedelta(hours=24)
    # A payment nobody pays is canceled with expired_on_confirmation after this long.
    confirmation_ttl: timedelta = timedelta(hours=1)
    # A waiting_for_capture payment is canceled with expired_on_capture after this long.
    capture_ttl: timedelta = timedelta(days=7)
    fee_rate: Decimal = Decimal("0.035")
    # How often the background loop looks for due notifications and expiries (seconds).
    tick_interval: float = 0.5
    clock: Callable[[], datetime] = utc_now
    # The secret of the demo Auth service at /auth-demo/ (whsec_...); None: it verifies nothing.
    auth_demo_secret: str | None = field(default=None, repr=False)
