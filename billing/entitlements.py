"""Entitlements: what a viewer may watch now, as the cinema's other services need to know it.

One entitlement per subscription that gives access (`models.RUNNING_SUBSCRIPTION_STATUSES`): the plan's code,
the subscription's status, until when access lasts, whether it renews, and the plan's features.
They are computed from the subscriptions' stored state alone, never from the clock: a period that
ran out still entitles until the expiry job ends the subscription (a receiver may compare
`valid_until` with its own clock). That is what lets `ViewerEntitlements` hold them as a snapshot
whose version changes exactly when they do (billing.services.entitlements).

A past-due subscription keeps access through the dunning grace (DUNNING_GRACE_DAYS after its
period's end): its `valid_until` is the grace's end.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from billing.models import RUNNING_SUBSCRIPTION_STATUSES, Subscription, SubscriptionStatus, ViewerEntitlements


@dataclass(frozen=True, kw_only=True)
class Entitlement:
    plan: str  # the plan's code
    status: str  # SubscriptionStatus value: "active" or "past_due"
    valid_until: datetime
    auto_renew: bool
    features: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "status": self.status,
            "valid_until": self.valid_until.astimezone(UTC).isoformat(),
            "auto_renew": self.auto_renew,
            "features": list(self.features),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Entitlement":
        return cls(
            plan=data["plan"],
            status=data["status"],
            valid_until=datetime.fromisoformat(data["valid_until"]),
            auto_renew=data["auto_renew"],
            features=tuple(data["features"]),
        )


# In a stable order (plan code, then status) so that equal entitlements compare and serialise equal.
Entitlements = tuple[Entitlement, ...]


@dataclass(frozen=True, kw_only=True)
class VersionedEntitlements:
    viewer_id: uuid.UUID
    version: int  # 0: billing never recorded entitlements for this viewer
    entitlements: Entitlements


def entitlements_to_json(entitlements: Entitlements) -> list[dict[str, Any]]:
    return [entitlement.to_json() for entitlement in entitlements]


def entitlements_from_json(data: list[dict[str, Any]]) -> Entitlements:
    return tuple(Entitlement.from_json(item) for item in data)


def entitlements_compute(*, viewer_id: uuid.UUID) -> Entitlements:
    """What the viewer's subscriptions entitle them to now (one query)."""
    return entitlements_compute_many(viewer_ids=[viewer_id])[viewer_id]


def entitlements_compute_many(*, viewer_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Entitlements]:
    """`entitlements_compute` for many viewers in one query; every viewer asked for is a key."""
    viewer_ids = list(viewer_ids)
    found: dict[uuid.UUID, list[Entitlement]] = {viewer_id: [] for viewer_id in viewer_ids}
    subscriptions = Subscription.objects.filter(
        viewer_id__in=viewer_ids, status__in=RUNNING_SUBSCRIPTION_STATUSES
    ).select_related("plan")
    for subscription in subscriptions:
        found[subscription.viewer_id].append(_entitlement(subscription))
    return {viewer_id: tuple(sorted(items, key=lambda e: (e.plan, e.status))) for viewer_id, items in found.items()}


def entitlements_get_many(*, viewer_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, VersionedEntitlements]:
    """The recorded entitlements and their versions, in one query; a viewer billing never recorded
    any for has none, at version 0 (what an unknown viewer gets too: no way to tell them apart)."""
    viewer_ids = list(viewer_ids)
    rows = {row.viewer_id: row for row in ViewerEntitlements.objects.filter(viewer_id__in=viewer_ids)}
    result = {}
    for viewer_id in viewer_ids:
        row = rows.get(viewer_id)
        result[viewer_id] = VersionedEntitlements(
            viewer_id=viewer_id,
            version=row.version if row else 0,
            entitlements=entitlements_from_json(row.entitlements) if row else (),
        )
    return result


def entitlements_get(*, viewer_id: uuid.UUID) -> VersionedEntitlements:
    return entitlements_get_many(viewer_ids=[viewer_id])[viewer_id]


def _entitlement(subscription: Subscription) -> Entitlement:
    valid_until = subscription.current_period_end
    if subscription.status == SubscriptionStatus.PAST_DUE:
        valid_until += timedelta(days=settings.DUNNING_GRACE_DAYS)
    return Entitlement(
        plan=subscription.plan.code,
        status=str(subscription.status),
        valid_until=valid_until,
        auto_renew=subscription.auto_renew,
        features=tuple(subscription.plan.features),
    )
