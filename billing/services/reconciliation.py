"""The janitor: every payment and refund that is not final gets asked about until it is.

Notifications get lost and processes die between a call and its write. Every open row has a
`next_check_at`; the janitor claims due rows (SKIP LOCKED, then pushes `next_check_at` back, so
parallel janitors never take the same row and a row that keeps failing never stalls the batch),
then brings each to what YooKassa says, through the same services webhooks use:

- known to YooKassa: re-fetch it;
- never confirmed by YooKassa, key younger than YooKassa's 24 h: send the create call again with
  its own key (YooKassa answers with the original, or creates it now);
- older: look it up by the id in its metadata, or close it as never created.

The janitor keeps real time, whatever billing's clock says (`run_billing_jobs --as-of` moves that
one): YooKassa answers and forgets keys in real time, and a row scheduled on a clock that ran ahead
would be left alone by every real-time janitor until real time caught up.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Model, Q, QuerySet

from billing import clock
from billing.errors import GatewayError
from billing.events import BillingEventType, ReconciliationFailed
from billing.gateway import get_gateway
from billing.models import OPEN_PAYMENT_STATUSES, OPEN_REFUND_STATUSES, Payment, Refund
from billing.services.events import event_record
from billing.services.job_reports import JobReport
from billing.services.payments import (
    payment_apply_provider_state,
    payment_close_unsent,
    payment_create_at_provider,
    payment_refresh,
)
from billing.services.refunds import (
    refund_apply_provider_state,
    refund_close_unsent,
    refund_create_at_provider,
    refund_refresh,
)

logger = logging.getLogger(__name__)

# Waits between looks at one open row: 5 minutes, an hour, then daily.
BACKOFF = (timedelta(minutes=5), timedelta(hours=1), timedelta(days=1))
# YooKassa keeps an Idempotence-Key for 24 hours; re-sending is only safe well inside that.
KEY_STILL_KNOWN = timedelta(hours=23)


@dataclass
class ReconcileReport(JobReport):
    looked_at: int = 0
    settled: int = 0
    unavailable: int = 0


@dataclass(frozen=True)
class _Kind:
    """How the janitor reaches one kind of row (payment or refund) at YooKassa."""

    provider_id: Callable[[Any], str | None]
    refresh: Callable[[str], Any]
    # Raises GatewayError when YooKassa did not confirm it (the row is looked at again later).
    create_at_provider: Callable[[Any], Any]
    # One page of YooKassa's list where the row's object would be, and the metadata key naming it.
    list_page: Callable[[Any, str | None], Any]
    metadata_key: str
    apply: Callable[[Any], Any]
    close_unsent: Callable[[Any], Any]


_PAYMENTS = _Kind(
    provider_id=lambda payment: payment.provider_payment_id,
    refresh=lambda provider_id: payment_refresh(provider_payment_id=provider_id),
    create_at_provider=lambda payment: payment_create_at_provider(payment=payment),
    list_page=lambda payment, cursor: get_gateway().list_payments(
        created_since=payment.created_at - timedelta(hours=1), cursor=cursor
    ),
    metadata_key="payment_id",
    apply=lambda found: payment_apply_provider_state(provider_payment=found),
    close_unsent=lambda payment: payment_close_unsent(payment=payment),
)
_REFUNDS = _Kind(
    provider_id=lambda refund: refund.provider_refund_id,
    refresh=lambda provider_id: refund_refresh(provider_refund_id=provider_id),
    create_at_provider=lambda refund: refund_create_at_provider(refund=refund),
    list_page=lambda refund, cursor: get_gateway().list_refunds(
        provider_payment_id=refund.payment.provider_payment_id, cursor=cursor
    ),
    metadata_key="refund_id",
    apply=lambda found: refund_apply_provider_state(provider_refund=found),
    close_unsent=lambda refund: refund_close_unsent(refund=refund),
)


def billing_reconcile(*, now: datetime | None = None, page_size: int = 100, time_budget: float = 60) -> ReconcileReport:
    """Look at every open row that is due; `now` is the real moment (tests pass a later one)."""
    now = now or clock.real_now()
    report = ReconcileReport()
    deadline = time.monotonic() + time_budget
    for model, open_statuses, kind in (
        (Payment, OPEN_PAYMENT_STATUSES, _PAYMENTS),
        (Refund, OPEN_REFUND_STATUSES, _REFUNDS),
    ):
        while time.monotonic() < deadline:
            due = model.objects.filter(
                Q(next_check_at__lte=now) | Q(next_check_at__isnull=True), status__in=open_statuses
            )
            rows = _claim(due, now, page_size)
            if not rows:
                break
            for row in rows:
                report.looked_at += 1
                _reconcile_safely(row, kind, report)
    return report


def _claim(due: QuerySet, now: datetime, page_size: int) -> list[Model]:
    """Take a page of due rows no other janitor holds, and set when each is due again."""
    with transaction.atomic():
        rows = list(
            due.select_for_update(skip_locked=True, of=("self",)).order_by(F("next_check_at").asc(nulls_first=True))[
                :page_size
            ]
        )
        for row in rows:
            row.next_check_at = now + BACKOFF[min(row.check_attempts, len(BACKOFF) - 1)]
            row.check_attempts += 1
        if rows:
            due.model.objects.bulk_update(rows, ["next_check_at", "check_attempts"])
    return rows


def _reconcile_safely(row: Payment | Refund, kind: _Kind, report: ReconcileReport) -> None:
    try:
        settled = _reconcile(kind, row)
    except GatewayError as error:
        logger.info(
            "%s %s: YooKassa unavailable (%s); next look at %s", type(row).__name__, row.pk, error, row.next_check_at
        )
        report.unavailable += 1
        return
    except Exception as error:
        # A row that breaks the janitor is reported and skipped; its back-off keeps it from
        # being retried in a tight loop.
        logger.exception("Reconciling %s %s failed", type(row).__name__, row.pk)
        report.failed_ids.append(str(row.pk))
        payment = row if isinstance(row, Payment) else row.payment
        event_record(
            payment.subscription,
            BillingEventType.RECONCILIATION_FAILED,
            ReconciliationFailed(error=repr(error)[:500]),
            payment=payment,
        )
        return
    report.settled += settled


def _reconcile(kind: _Kind, row: Payment | Refund) -> bool:
    """Bring one open row to what YooKassa says; True when it is settled."""
    provider_id = kind.provider_id(row)
    if provider_id:
        return not kind.refresh(provider_id).is_open
    if _key_still_known(row):
        return not kind.create_at_provider(row).is_open
    found = _find_by_metadata(lambda cursor: kind.list_page(row, cursor), kind.metadata_key, row.pk)
    if found is not None:
        return not kind.apply(found).is_open
    kind.close_unsent(row)
    return True


def _key_still_known(row: Payment | Refund) -> bool:
    """YooKassa's 24 hours are real ones, whatever billing's clock says."""
    return clock.real_now() - row.created_at < KEY_STILL_KNOWN


def _find_by_metadata(fetch_page, key: str, local_id):
    """Page through YooKassa's list for the object whose metadata names our row."""
    cursor = None
    while True:
        page = fetch_page(cursor)
        for item in page.items:
            if item.metadata.get(key) == str(local_id):
                return item
        if page.next_cursor is None:
            return None
        cursor = page.next_cursor
