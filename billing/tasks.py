"""django-q2 tasks: thin, each runs one billing job and returns its report.

Every job is safe to run twice at once (several qcluster processes, or a task redelivered after
its lease) and safe to kill at any point: rows are claimed with SKIP LOCKED, every charge and
refund is committed with its own Idempotence-Key before YooKassa is called, and the janitor
finishes whatever a killed worker left open.
"""

from django.conf import settings

from billing import retention
from billing.services import lifecycle, reconciliation, renewals


def renew_due_subscriptions() -> dict:
    return renewals.subscription_renew_due(time_budget=time_budget()).as_dict()


def retry_past_due_subscriptions() -> dict:
    return renewals.subscription_retry_past_due(time_budget=time_budget()).as_dict()


def expire_subscriptions() -> dict:
    return lifecycle.subscription_expire_due()


def reconcile_payments_and_refunds() -> dict:
    return reconciliation.billing_reconcile(time_budget=time_budget()).as_dict()


def record_renewal_notices() -> int:
    return lifecycle.subscription_record_renewal_notices()


def time_budget() -> float:
    """Seconds a batch task keeps taking new rows: a third of what django-q2 allows it (Q_TIMEOUT)
    before killing it. A renewal batch finishes the page it took within twice that, which leaves
    the last third for the YooKassa call under way."""
    return settings.Q_CLUSTER["timeout"] / 3


def purge_old_records() -> dict:
    """Old outbox rows and idempotency keys (billing.retention), half of the time budget each."""
    budget = time_budget() / 2
    return {
        "events": retention.event_purge_old(time_budget=budget),
        "client_requests": retention.client_request_purge_old(time_budget=budget),
    }
