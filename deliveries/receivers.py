"""Billing's events, heard after commit (named in BILLING_EVENT_LISTENERS): deliver soon, not at
the next one-minute schedule. Only a hint: the schedule reads the outbox whatever happens here."""

import logging
import threading
import time

from django.core.cache import cache

from billing.models import BillingEvent
from deliveries.queueing import enqueue

logger = logging.getLogger(__name__)

# A burst of events (a renewal batch) enqueues one run a second, not one per event; what a run
# started too early misses, the next one (or the schedule) picks up.
DEBOUNCE_KEY = "deliveries:run-enqueued"
DEBOUNCE_SECONDS = 1
# After the cache fails, it is left alone this long (see mail.receivers).
CACHE_RETRY_AFTER_SECONDS = 30


class _Debounce:
    """Across processes through the cache; in this process only while the cache fails (fail open:
    two runs at once are safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache_unavailable_until = 0.0
        self._local_window_ends = 0.0

    def first_in_window(self) -> bool:
        if time.monotonic() >= self._cache_unavailable_until:
            try:
                return cache.add(DEBOUNCE_KEY, True, timeout=DEBOUNCE_SECONDS)
            except Exception as exc:
                logger.warning("Deliveries' debounce cannot reach the cache (%r): debouncing in this process", exc)
                self._cache_unavailable_until = time.monotonic() + CACHE_RETRY_AFTER_SECONDS
        with self._lock:
            now = time.monotonic()
            if now < self._local_window_ends:
                return False
            self._local_window_ends = now + DEBOUNCE_SECONDS
            return True


_debounce = _Debounce()


def on_billing_event(event: BillingEvent) -> None:
    if _debounce.first_in_window():
        enqueue("deliveries.tasks.deliver_events")
