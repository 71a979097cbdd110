"""Delivered and dead deliveries (and their attempts) older than RETENTION_DELIVERY_DAYS are
deleted (billing.retention); a pending one never is. validate() keeps the age well above
DELIVERY_EVENT_LOOKBACK_HOURS: a row deleted while its event is still in the window would be
created and sent again. Its PROTECT reference keeps the event from billing's outbox purge until
the delivery row goes."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from billing.retention import purge_in_batches
from deliveries.models import Delivery, DeliveryStatus


def delivery_purge_old(*, time_budget: float, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return purge_in_batches(
        Delivery.objects.filter(status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.DEAD]),
        age_field="created_at",
        older_than=now - timedelta(days=settings.RETENTION_DELIVERY_DAYS),
        time_budget=time_budget,
    )
