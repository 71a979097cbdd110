"""Fault switches: make the emulated YooKassa misbehave the ways the real one can.

API faults match a request kind such as "payments.create" (or "*"); notification faults match an
event such as "payment.succeeded" (or "*"). Each affects the next `times` matches (None: until
cleared); a reorder fault counts a time per group of `hold` notifications it releases, so that
none it holds is left behind. They are set from tests in process, or over HTTP at /sandbox/faults.
"""

import itertools
import threading
from dataclasses import asdict, dataclass, field
from enum import StrEnum

API_KINDS = (
    "payments.create",
    "payments.list",
    "payments.get",
    "payments.capture",
    "payments.cancel",
    "refunds.create",
    "refunds.list",
    "refunds.get",
    "me.get",
)


class ApiEffect(StrEnum):
    # HTTP 500. With applied=True the operation is carried out first: the outcome is unknown to
    # the caller, and a retry with the same Idempotence-Key returns the real result.
    ERROR_500 = "error_500"
    # HTTP 429 too_many_requests; nothing is done.
    ERROR_429 = "error_429"
    # HTTP 202 "request accepted, not processed yet"; nothing is done (the legacy asynchronous mode).
    ERROR_202 = "error_202"
    # The operation is carried out at once but the answer comes `delay` seconds later.
    SLOW = "slow"
    # The operation is carried out at once and the answer, status line and headers included,
    # goes out one byte every `delay` seconds: each read is quick, the whole answer is not.
    TRICKLE = "trickle"
    # The connection is closed without an answer, after the operation if applied=True.
    DROP = "drop"


class NotificationEffect(StrEnum):
    DUPLICATE = "duplicate"  # `copies` deliveries of the same notification (in parallel if asked)
    DELAY = "delay"  # first delivery `delay` seconds late, so later events overtake it
    LOSE = "lose"  # never delivered, as when every retry failed
    REORDER = "reorder"  # held until `hold` notifications are waiting, then delivered newest first


_ids = itertools.count(1)


@dataclass
class ApiFault:
    effect: ApiEffect
    kind: str = "*"
    applied: bool = True
    delay: float = 0.0
    times: int | None = 1
    id: int = field(default_factory=lambda: next(_ids))

    def __post_init__(self) -> None:
        self.effect = ApiEffect(self.effect)
        if self.kind != "*" and self.kind not in API_KINDS:
            raise ValueError(f"Unknown request kind {self.kind!r}; one of {', '.join(API_KINDS)} or '*'.")
        _check_times(self.times)


@dataclass
class NotificationFault:
    effect: NotificationEffect
    event: str = "*"
    copies: int = 2
    parallel: bool = False
    delay: float = 0.0
    hold: int = 2
    times: int | None = 1
    id: int = field(default_factory=lambda: next(_ids))

    def __post_init__(self) -> None:
        self.effect = NotificationEffect(self.effect)
        if self.copies < 1 or self.hold < 1:
            raise ValueError("copies and hold are at least 1.")
        _check_times(self.times)


def _check_times(times: int | None) -> None:
    if times is not None and times < 1:
        raise ValueError("times is at least 1, or None for 'until cleared'.")


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api: list[ApiFault] = []
        self._notifications: list[NotificationFault] = []

    def add(self, fault: ApiFault | NotificationFault) -> ApiFault | NotificationFault:
        with self._lock:
            (self._api if isinstance(fault, ApiFault) else self._notifications).append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._api.clear()
            self._notifications.clear()

    def take_api(self, kind: str) -> ApiFault | None:
        with self._lock:
            return _take(self._api, lambda fault: fault.kind in ("*", kind))

    def take_notification(self, event: str) -> NotificationFault | None:
        with self._lock:
            for fault in self._notifications:
                if fault.event in ("*", event):
                    if fault.effect is not NotificationEffect.REORDER:
                        _use(self._notifications, fault)
                    return fault
            return None

    def reorder_released(self, fault: NotificationFault) -> None:
        """A reorder fault has released a group: that is one of its `times`."""
        with self._lock:
            if any(active is fault for active in self._notifications):
                _use(self._notifications, fault)

    def notification_fault_ids(self) -> set[int]:
        with self._lock:
            return {fault.id for fault in self._notifications}

    def describe(self) -> dict:
        with self._lock:
            return {
                "api": [asdict(fault) for fault in self._api],
                "notifications": [asdict(fault) for fault in self._notifications],
            }


def _take(faults: list, matches) -> ApiFault | NotificationFault | None:
    for fault in faults:
        if matches(fault):
            _use(faults, fault)
            return fault
    return None


def _use(faults: list, fault: ApiFault | NotificationFault) -> None:
    if fault.times is not None:
        fault.times -= 1
        if fault.times == 0:
            faults[:] = [other for other in faults if other is not fault]


def fault_from_dict(data: dict) -> ApiFault | NotificationFault:
    """Build a fault from the JSON of POST /sandbox/faults: {"scope": "api" | "notifications", ...}."""
    data = dict(data)
    scope = data.pop("scope", "api")
    data.pop("id", None)
    cls = {"api": ApiFault, "notifications": NotificationFault}.get(scope)
    if cls is None:
        raise ValueError("scope is 'api' or 'notifications'.")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
