"""Notifications to the shop's URL, redelivered like YooKassa does until the shop answers 200.

The emulator queues them in the store inside the same transaction as the change they describe;
`deliver_due()` (run by the sandbox's background loop) posts what is due. Fault switches can
duplicate, delay, lose or reorder them.
"""

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

from sandbox.config import SandboxConfig
from sandbox.faults import Faults, NotificationEffect
from sandbox.store import Notification, Store

logger = logging.getLogger(__name__)

# Spacing of notifications released by a REORDER fault, so they arrive in the reversed order.
_REORDER_GAP = 0.2
_REORDER_GROUP = "reorder-"


class Notifier:
    def __init__(
        self,
        config: SandboxConfig,
        store: Store,
        faults: Faults,
        *,
        on_queued: Callable[[], None] = lambda: None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self._faults = faults
        # Wakes the delivery loop: a notification goes out as soon as its transaction commits.
        self._on_queued = on_queued
        # The delivery clock (seconds). Not config.clock, which tests move to make payments expire.
        self._now = now
        # Deliveries whose POST has not been answered yet (see wait_idle).
        self._in_flight = 0
        self._idle = threading.Condition()

    def emit(self, event: str, obj: dict) -> None:
        """Queue the notification for `event` about `obj` (call inside the store's transaction)."""
        now = self._now()
        body = {"type": "notification", "event": event, "object": obj}
        created_at = self._config.clock().isoformat()
        queue = {"event": event, "object_id": obj["id"], "body": body, "created_at": created_at, "emitted_at": now}
        fault = self._faults.take_notification(event)
        if fault is None:
            self._store.add_notification(**queue, state="pending", due_at=now)
        elif fault.effect is NotificationEffect.LOSE:
            self._store.add_notification(**queue, state="lost", due_at=None)
        elif fault.effect is NotificationEffect.DELAY:
            self._store.add_notification(**queue, state="pending", due_at=now + fault.delay)
        elif fault.effect is NotificationEffect.DUPLICATE:
            burst = f"burst-{uuid.uuid4()}" if fault.parallel else None
            for _ in range(fault.copies):
                self._store.add_notification(**queue, state="pending", due_at=now, burst=burst)
        else:  # REORDER
            group = f"{_REORDER_GROUP}{fault.id}"
            self._store.add_notification(**queue, state="held", due_at=None, hold_group=group)
            if len(self._store.notifications(state="held", hold_group=group)) >= fault.hold:
                self._release(group, now)
                self._faults.reorder_released(fault)
        self._on_queued()

    def _release(self, group: str, now: float) -> None:
        held = self._store.notifications(state="held", hold_group=group)
        newest_first = sorted(held, key=lambda n: n.id, reverse=True)
        self._store.release_notifications([(n.id, now + index * _REORDER_GAP) for index, n in enumerate(newest_first)])

    def _release_orphans(self) -> None:
        """Notifications held by a reorder fault that was cleared before its group filled up go out now."""
        # Groups first: a fault added after this read has no group here yet, and ids are never reused.
        held = self._store.held_groups()
        active = self._faults.notification_fault_ids()
        for group in held:
            if int(group.removeprefix(_REORDER_GROUP)) not in active:
                self._release(group, self._now())
                self._on_queued()

    def deliver_due(self) -> int:
        """Post every notification that is due; return how many attempts were made."""
        self._release_orphans()
        if not self._config.notification_url:
            return 0
        due = self._store.claim_due_notifications(self._now(), limit=100)
        bursts: dict[str | None, list[Notification]] = {}
        for notification in due:
            if notification.burst is None:
                self._deliver(notification)
            else:
                bursts.setdefault(notification.burst, []).append(notification)
        for burst in bursts.values():
            with ThreadPoolExecutor(max_workers=len(burst)) as pool:
                list(pool.map(self._deliver, burst))
        return len(due)

    def next_due_in(self) -> float | None:
        if not self._config.notification_url:
            # Nothing goes out until a URL is set: without this, a queued notification kept the
            # loop ticking every 5 ms (200 store transactions a second, stealing the GIL).
            return None
        due_at = self._store.next_notification_due()
        return None if due_at is None else max(0.0, due_at - self._now())

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no delivery is waiting for the shop's answer; False if one still is.

        Tests stop deliveries (no notification URL) and then wait here, so that no webhook is
        still at work in the service when its test database is emptied."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def _deliver(self, notification: Notification) -> None:
        with self._idle:
            self._in_flight += 1
        try:
            self._post(notification)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _post(self, notification: Notification) -> None:
        attempts = notification.attempts + 1
        try:
            response = requests.post(
                self._config.notification_url,
                json=notification.body,
                timeout=self._config.notification_timeout,
                headers={"User-Agent": "YooKassa sandbox notifier"},
                # Only a 200 is a delivery: a redirect is an answer like any other, never followed.
                allow_redirects=False,
            )
            delivered = response.status_code == 200
            result = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            delivered, result = False, f"{type(exc).__name__}: {exc}"
        if delivered:
            self._store.update_notification(
                notification.id, state="delivered", attempts=attempts, due_at=None, last_result=result
            )
            return
        schedule = self._config.notification_retry_schedule
        if attempts > len(schedule):
            logger.warning(
                "Notification %s %s given up after %s attempts", notification.event, notification.object_id, attempts
            )
            self._store.update_notification(
                notification.id, state="failed", attempts=attempts, due_at=None, last_result=result
            )
            return
        # Attempt n + 1 is due schedule[n - 1] after the event, not after attempt n: a slow answer
        # or a late loop does not push the whole series out of YooKassa's 24 hours.
        emitted_at = notification.emitted_at if notification.emitted_at is not None else self._now()
        due_at = emitted_at + schedule[attempts - 1] * self._config.notification_time_scale
        self._store.update_notification(
            notification.id, state="pending", attempts=attempts, due_at=due_at, last_result=result
        )
