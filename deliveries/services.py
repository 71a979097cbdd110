"""Billing's outbox to the endpoints: one delivery row per (event, endpoint), sent at least once.

`delivery_create_for_events` reads a recent window of the outbox by `created_at` (ids are taken
at insert, so an event committed late can carry a smaller id than one already handled: the
window, not "the last id seen") and inserts the missing rows; the unique (event, endpoint) makes
a concurrent run's insert a no-op. An endpoint gets the events recorded since it was created;
older ones only by a replay (`delivery_replay`).

`delivery_send_due` claims due rows with SKIP LOCKED, pushing `next_attempt_at` past a lease
before any POST: a worker killed mid-request leaves the row due again after the lease, and the
next worker sends it again with the same `webhook-id` (the receiver dedupes). Per (endpoint,
viewer), a delivery is not claimed while an earlier event of that viewer is still pending there,
so a receiver never gets a viewer's newer state before an older one that is still owed.
"""

import json
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Min, OuterRef, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from billing.models import BillingEvent
from deliveries.endpoints import delivery_rows_insert, endpoint_disable, endpoint_sync_from_settings, retry_window
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus, Endpoint
from deliveries.queueing import enqueue

logger = logging.getLogger(__name__)

ANSWER_KEPT_BYTES = 1024
USER_AGENT = "cinema-billing-webhooks/1"


@dataclass
class SendReport:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    disabled: int = 0

    def as_dict(self) -> dict:
        return {"delivered": self.delivered, "retrying": self.retrying, "dead": self.dead, "disabled": self.disabled}


# --- from events to deliveries -------------------------------------------------------------------


def delivery_create_for_events(*, now: datetime | None = None, page_size: int = 500) -> int:
    """Insert the delivery of every event of the lookback window each enabled endpoint wants and
    has none of yet. Returns how many rows this run tried to insert (a concurrent run may have
    inserted some of them first)."""
    now = now or timezone.now()
    endpoint_sync_from_settings()
    since = now - timedelta(hours=settings.DELIVERY_EVENT_LOOKBACK_HOURS)
    # The window's lowest id, found through the created_at index; from there the id index bounds the scan.
    floor = BillingEvent.objects.filter(created_at__gte=since).aggregate(floor=Min("id"))["floor"]
    if floor is None:
        return 0
    created = 0
    for endpoint in Endpoint.objects.filter(enabled=True).exclude(event_types=[]):
        undelivered = (
            BillingEvent.objects.filter(
                id__gte=floor, type__in=endpoint.event_types, created_at__gte=endpoint.created_at
            )
            .exclude(Exists(Delivery.objects.filter(event=OuterRef("pk"), endpoint=endpoint)))
            .order_by("id")
            .values_list("id", "viewer_id", "type")
        )
        after = floor - 1
        while True:
            page = list(undelivered.filter(id__gt=after)[:page_size])
            delivery_rows_insert(endpoint, page, now)
            created += len(page)
            if len(page) < page_size:
                break
            after = page[-1][0]
    return created


# --- sending -----------------------------------------------------------------------------------


def delivery_send_due(*, time_budget: float = 60) -> SendReport:
    """Send every due delivery of the enabled endpoints, a batch at a time, in parallel within a
    batch, until none is due or the time budget is spent (one batch at least)."""
    report = SendReport()
    deadline = time.monotonic() + time_budget
    while True:
        claimed = _claim_due(settings.DELIVERY_BATCH_SIZE)
        if not claimed:
            break
        messages = [_message(delivery) for delivery in claimed]
        outcomes = list(_pool().map(_post, messages))
        _record_batch(claimed, outcomes, report)
        if time.monotonic() >= deadline:
            break
    return report


def _due() -> Q:
    earlier_pending = Delivery.objects.filter(
        endpoint=OuterRef("endpoint"),
        viewer_id=OuterRef("viewer_id"),
        status=DeliveryStatus.PENDING,
        event_id__lt=OuterRef("event_id"),
    )
    return Q(status=DeliveryStatus.PENDING, endpoint__enabled=True) & ~Exists(earlier_pending)


def _claim_due(batch_size: int) -> list[Delivery]:
    """Lock due deliveries no other worker holds and push each past the lease; the attempt is
    counted here, so a delivery that kills its worker every time still ends DEAD."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(_due(), next_attempt_at__lte=now)
            .select_related("event", "endpoint")
            .order_by("event_id")[:batch_size]
        )
        lease_ends = now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
        if rows:
            Delivery.objects.filter(pk__in=[row.pk for row in rows]).update(
                attempts=F("attempts") + 1, next_attempt_at=lease_ends, updated_at=now
            )
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = lease_ends
    return rows


def delivery_body(event: BillingEvent) -> dict:
    """What a receiver gets: the event's type and time, its payload and the ids it concerns."""
    data = dict(event.payload)
    data["viewer_id"] = str(event.viewer_id)
    for name in ("subscription_id", "payment_id", "refund_id"):
        value = getattr(event, name)
        if value is not None:
            data[name] = str(value)
    data["event_id"] = event.id
    return {"type": event.type, "timestamp": event.created_at.isoformat(), "data": data}


@dataclass(frozen=True)
class _Message:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class _Outcome:
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    answer: str = ""
    error: str = ""


def _message(delivery: Delivery, *, now: datetime | None = None) -> _Message:
    body = json.dumps(delivery_body(delivery.event), separators=(",", ":"), ensure_ascii=False).encode()
    return _Message(
        url=delivery.endpoint.url, headers=sign(delivery.endpoint, delivery.message_id, body, now), body=body
    )


def sign(endpoint: Endpoint, message_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers; one signature per secret of the endpoint (during a rotation the
    old and the new one), space-separated as the spec allows."""
    now = now or timezone.now()
    signatures = " ".join(Webhook(secret).sign(message_id, now, body) for secret in endpoint.secrets())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


_local = threading.local()
_pool_lock = threading.Lock()
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool() -> ThreadPoolExecutor:
    """The process's senders: threads kept between batches, so their sessions keep their
    connections alive (created in the worker process itself, after django-q2 forked it)."""
    key = (os.getpid(), settings.DELIVERY_BATCH_SIZE)
    with _pool_lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(max_workers=key[1], thread_name_prefix="delivery")
        return _pools[key]


def _session() -> requests.Session:
    """One pooled session per thread (keep-alive to the same receiver across batches)."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def _post(message: _Message) -> _Outcome:
    started_at = timezone.now()
    start = time.monotonic()
    try:
        response = _session().post(
            message.url,
            data=message.body,
            headers=message.headers,
            timeout=(settings.DELIVERY_CONNECT_TIMEOUT, settings.DELIVERY_READ_TIMEOUT),
            allow_redirects=False,
            stream=True,
        )
        try:
            answer = response.raw.read(ANSWER_KEPT_BYTES, decode_content=True) or b""
        finally:
            response.close()
        return _Outcome(
            started_at,
            _ms_since(start),
            status_code=response.status_code,
            answer=answer.decode("utf-8", "replace"),
        )
    except Exception as error:
        return _Outcome(started_at, _ms_since(start), error=f"{type(error).__name__}: {error}"[:2000])


def _ms_since(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


def _still_ours(delivery: Delivery) -> Q:
    """The row as this worker claimed it: not claimed again by another since (after the lease)."""
    return Q(pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=delivery.attempts)


def _delivered(outcome: _Outcome) -> bool:
    return outcome.status_code is not None and 200 <= outcome.status_code < 300


def _record_batch(claimed: list[Delivery], outcomes: list[_Outcome], report: SendReport) -> None:
    """Every attempt of the batch, and each delivery's new state, in one transaction: a commit
    per delivery would cost more than its POST. The delivered ones in one UPDATE."""
    now = timezone.now()
    pairs = list(zip(claimed, outcomes, strict=True))
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                delivery=delivery,
                started_at=outcome.started_at,
                duration_ms=outcome.duration_ms,
                status_code=outcome.status_code,
                response_body=outcome.answer,
                error=outcome.error,
            )
            for delivery, outcome in pairs
        )
        delivered = [delivery for delivery, outcome in pairs if _delivered(outcome)]
        if delivered:
            condition = Q()
            for delivery in delivered:
                condition |= _still_ours(delivery)
            recorded = Delivery.objects.filter(condition).update(
                status=DeliveryStatus.DELIVERED, delivered_at=now, last_error="", updated_at=now
            )
            if recorded < len(delivered):
                logger.warning(
                    "%s deliveries went through after their lease ran out: they may be sent again",
                    len(delivered) - recorded,
                )
            report.delivered += len(delivered)
        for delivery, outcome in pairs:
            if not _delivered(outcome):
                _record_failure(delivery, outcome, report, now)


def _record_failure(delivery: Delivery, outcome: _Outcome, report: SendReport, now: datetime) -> None:
    ours = Delivery.objects.filter(_still_ours(delivery))
    error = outcome.error or f"HTTP {outcome.status_code}: {outcome.answer[:200]}"
    if outcome.status_code == 410:
        # Gone: the service says it wants no more. The delivery waits, due now, for an operator
        # to enable the endpoint again (or to delete it).
        ours.update(next_attempt_at=now, last_error=error, updated_at=now)
        reason = f"Answered 410 Gone to delivery {delivery.pk} at {now:%Y-%m-%d %H:%M:%S %Z}."
        if endpoint_disable(endpoint_id=delivery.endpoint_id, reason=reason):
            logger.error("Webhook endpoint %s disabled: %s", delivery.endpoint.name, reason)
        report.disabled += 1
        return
    retry_at = now + _backoff(delivery.attempts)
    if retry_at > delivery.retry_until:
        ours.update(status=DeliveryStatus.DEAD, next_attempt_at=None, last_error=error, updated_at=now)
        logger.error(
            "Delivery %s (%s to %s) is dead after %s attempt(s): %s",
            delivery.pk,
            delivery.event_type,
            delivery.endpoint.name,
            delivery.attempts,
            error,
        )
        report.dead += 1
        return
    ours.update(next_attempt_at=retry_at, last_error=error, updated_at=now)
    report.retrying += 1


def _backoff(attempts: int) -> timedelta:
    """Exponential with full jitter above a floor: between the minimum and min(maximum, minimum * 2^(n-1))."""
    low = settings.DELIVERY_RETRY_MIN_SECONDS
    ceiling = min(settings.DELIVERY_RETRY_MAX_SECONDS, low * 2 ** min(attempts - 1, 30))
    return timedelta(seconds=random.uniform(low, ceiling))  # noqa: S311 - jitter, not a secret


# --- operators ---------------------------------------------------------------------------------


def delivery_resend(*, delivery_ids: list[int]) -> int:
    """The deliveries, whatever their status, due again now with a fresh series of retries."""
    now = timezone.now()
    count = Delivery.objects.filter(pk__in=delivery_ids).update(
        status=DeliveryStatus.PENDING,
        next_attempt_at=now,
        retry_until=now + retry_window(),
        delivered_at=None,
        updated_at=now,
    )
    if count:
        transaction.on_commit(_enqueue_soon, robust=True)
    return count


def delivery_replay(
    *,
    endpoint_id: int,
    from_id: int | None = None,
    to_id: int | None = None,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
) -> int:
    """Every event of the range the endpoint wants, (re)delivered to it: new rows for those it
    never had, existing ones due again. Returns how many deliveries are now due."""
    endpoint = Endpoint.objects.get(pk=endpoint_id)
    events = BillingEvent.objects.filter(type__in=endpoint.event_types).order_by("id")
    if from_id is not None:
        events = events.filter(id__gte=from_id)
    if to_id is not None:
        events = events.filter(id__lte=to_id)
    if from_time is not None:
        events = events.filter(created_at__gte=from_time)
    if to_time is not None:
        events = events.filter(created_at__lte=to_time)
    now = timezone.now()
    with transaction.atomic():
        delivery_rows_insert(endpoint, list(events.values_list("id", "viewer_id", "type")), now)
        count = Delivery.objects.filter(endpoint=endpoint, event__in=events.values("id")).update(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            retry_until=now + retry_window(),
            delivered_at=None,
            updated_at=now,
        )
        transaction.on_commit(_enqueue_soon, robust=True)
    return count


def _enqueue_soon() -> None:
    enqueue("deliveries.tasks.send_deliveries")
