"""Endpoints named in settings, written into the table (settings win for those they name), and
the operators' changes to an endpoint."""

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from billing.models import BillingEvent
from deliveries.models import Delivery, DeliveryStatus, Endpoint

AUTH_ENDPOINT_NAME = "auth"
# A process writes the settings' endpoints at most this often (each delivery run asks).
SYNC_EVERY_SECONDS = 60
_last_sync = {"at": float("-inf")}


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    url: str
    secret: str
    event_types: list[str] = field(default_factory=list)
    previous_secret: str = ""


def endpoint_specs_from_settings() -> list[EndpointSpec]:
    specs = [
        EndpointSpec(
            name=item["name"],
            url=item["url"],
            secret=item["secret"],
            event_types=list(item.get("event_types") or []),
            previous_secret=item.get("previous_secret") or "",
        )
        for item in settings.SERVICE_WEBHOOKS
    ]
    if settings.AUTH_WEBHOOK_URL:
        specs.append(
            EndpointSpec(
                name=AUTH_ENDPOINT_NAME,
                url=settings.AUTH_WEBHOOK_URL,
                secret=settings.AUTH_WEBHOOK_SECRET,
                event_types=list(settings.AUTH_WEBHOOK_EVENT_TYPES),
                previous_secret=settings.AUTH_WEBHOOK_PREVIOUS_SECRET,
            )
        )
    return specs


def endpoint_sync_from_settings(*, force: bool = False) -> list[Endpoint]:
    """Create or update the endpoints settings name; whether one is enabled stays the table's (an
    endpoint disabled after a 410 stays so until an operator enables it again). An endpoint that
    left the settings is kept, disabled, editable in the admin like any other."""
    if not force and time.monotonic() - _last_sync["at"] < SYNC_EVERY_SECONDS:
        return []
    synced = []
    with transaction.atomic():
        for spec in endpoint_specs_from_settings():
            endpoint, _ = Endpoint.objects.update_or_create(
                name=spec.name,
                defaults={
                    "url": spec.url,
                    "secret": spec.secret,
                    "previous_secret": spec.previous_secret,
                    "event_types": spec.event_types,
                    "from_settings": True,
                },
            )
            synced.append(endpoint)
        names = [endpoint.name for endpoint in synced]
        # Taken out of the settings: no longer delivered to, until an operator enables it again.
        now = timezone.now()
        Endpoint.objects.filter(from_settings=True).exclude(name__in=names).update(
            from_settings=False,
            enabled=False,
            disabled_reason="Removed from the settings.",
            disabled_at=now,
            updated_at=now,
        )
    _last_sync["at"] = time.monotonic()
    return synced


def endpoint_disable(*, endpoint_id: int, reason: str) -> bool:
    """Stop delivering to an endpoint; its pending deliveries wait. False if it was disabled already."""
    return bool(
        Endpoint.objects.filter(pk=endpoint_id, enabled=True).update(
            enabled=False, disabled_reason=reason[:500], disabled_at=timezone.now(), updated_at=timezone.now()
        )
    )


def endpoint_enable(*, endpoint_id: int) -> int:
    """Deliver to the endpoint again, its waiting deliveries first, each with a fresh series of
    retries (they may have waited longer than the retry window). Returns how many wait.

    The fan-out skips a disabled endpoint and reads only a recent window of the outbox, so the
    events recorded while it was disabled get their rows here: none is lost however long it was off.
    """
    now = timezone.now()
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint_id)
        if endpoint.disabled_at is not None:
            since = max(
                endpoint.created_at,
                endpoint.disabled_at - timedelta(hours=settings.DELIVERY_EVENT_LOOKBACK_HOURS),
            )
            missed = (
                BillingEvent.objects.filter(created_at__gte=since, type__in=endpoint.event_types)
                .exclude(Exists(Delivery.objects.filter(event=OuterRef("pk"), endpoint=endpoint)))
                .order_by("id")
                .values_list("id", "viewer_id", "type")
            )
            delivery_rows_insert(endpoint, list(missed), now)
        Endpoint.objects.filter(pk=endpoint_id).update(
            enabled=True, disabled_reason="", disabled_at=None, updated_at=now
        )
        return Delivery.objects.filter(endpoint_id=endpoint_id, status=DeliveryStatus.PENDING).update(
            next_attempt_at=now, retry_until=now + retry_window(), updated_at=now
        )


def delivery_rows_insert(endpoint: Endpoint, events: list[tuple[int, object, str]], now: datetime) -> None:
    """One pending delivery per event for the endpoint; rows it has already are left as they are."""
    until = now + retry_window()
    Delivery.objects.bulk_create(
        [
            Delivery(
                event_id=event_id,
                endpoint=endpoint,
                viewer_id=viewer_id,
                event_type=event_type,
                next_attempt_at=now,
                retry_until=until,
            )
            for event_id, viewer_id, event_type in events
        ],
        ignore_conflicts=True,
    )


def retry_window() -> timedelta:
    return timedelta(days=settings.DELIVERY_RETRY_DAYS)
