"""Retention: the logs that grow with traffic lose their old rows, a bounded batch at a time.

The service is sized for tens of millions of rows a month, so nothing here is one giant DELETE:
each batch picks the oldest ids through an index on the age column and deletes those ids, until
none are left or the run's time budget is spent (the next run goes on). Each app purges its own
tables with `purge_in_batches`; billing purges its outbox and its idempotency keys here.

Never purged: payments, refunds (operators' refunds with their reason and operator), subscriptions,
saved payment methods and plans; the money invariants and the audit live in them.
"""

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, QuerySet

from billing import clock
from billing.models import BillingEvent, ClientRequest


def purge_in_batches(queryset: QuerySet, *, age_field: str, older_than: datetime, time_budget: float) -> int:
    """Delete the rows of `queryset` whose `age_field` is before `older_than`, oldest first, in
    batches of RETENTION_BATCH_SIZE, for at most about `time_budget` seconds (one batch at least).
    Returns how many rows of the queryset's model were deleted."""
    deadline = time.monotonic() + time_budget
    batch_size = settings.RETENTION_BATCH_SIZE
    old = queryset.filter(**{f"{age_field}__lt": older_than})
    label = queryset.model._meta.label
    deleted = 0
    while True:
        ids = list(old.order_by(age_field, "pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        # The conditions again, not the ids alone: a row that changed since it was picked stays.
        deleted += old.filter(pk__in=ids).delete()[1].get(label, 0)
        if len(ids) < batch_size or time.monotonic() >= deadline:
            return deleted


def not_held(queryset: QuerySet) -> QuerySet:
    """The rows no other row holds on to with on_delete=PROTECT or RESTRICT. Django's registry
    knows every such reference (mail's emails hold billing's events), so billing needs to
    import none of the apps that keep them: a held row waits until its holder is purged."""
    for relation in queryset.model._meta.get_fields(include_hidden=True):
        if not (relation.auto_created and not relation.concrete and (relation.one_to_many or relation.one_to_one)):
            continue
        if relation.on_delete not in (models.PROTECT, models.RESTRICT):
            continue
        holders = relation.related_model._base_manager.filter(**{relation.field.name: OuterRef("pk")})
        queryset = queryset.exclude(Exists(holders))
    return queryset


def event_purge_old(*, time_budget: float, now: datetime | None = None) -> int:
    """Outbox rows older than RETENTION_EVENT_DAYS that nothing holds (an email keeps its event)."""
    now = now or clock.real_now()  # rows age in real time, whatever billing's clock says
    return purge_in_batches(
        not_held(BillingEvent.objects.all()),
        age_field="created_at",
        older_than=now - timedelta(days=settings.RETENTION_EVENT_DAYS),
        time_budget=time_budget,
    )


def client_request_purge_old(*, time_budget: float, now: datetime | None = None) -> int:
    """Idempotency keys older than RETENTION_CLIENT_REQUEST_DAYS: a repeat after that is a new
    request (validate() keeps the age above the promised CLIENT_REQUEST_KEY_PROMISE_DAYS)."""
    now = now or clock.real_now()
    return purge_in_batches(
        ClientRequest.objects.all(),
        age_field="created_at",
        older_than=now - timedelta(days=settings.RETENTION_CLIENT_REQUEST_DAYS),
        time_budget=time_budget,
    )
