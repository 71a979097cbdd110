"""The viewer's entitlements version: bumped, with a snapshot and an outbox event, in the
transaction of every change that alters what the viewer may watch."""

import uuid

from billing import locks
from billing.entitlements import entitlements_compute, entitlements_to_json
from billing.events import BillingEventType, EntitlementsChanged
from billing.models import RUNNING_SUBSCRIPTION_STATUSES, Subscription, ViewerEntitlements
from billing.services.events import event_record


def entitlements_sync(*, viewer_id: uuid.UUID) -> ViewerEntitlements:
    """Recompute the viewer's entitlements; if they differ from the recorded ones, record them
    under the next version with an `entitlements.changed` event. Call inside the transaction of
    the change, after it is saved, with the viewer's subscription locked: the viewer's row is the
    last lock of billing.locks' order."""
    ViewerEntitlements.objects.get_or_create(viewer_id=viewer_id)
    row = locks.viewer_entitlements_for_update().get(viewer_id=viewer_id)
    current = entitlements_to_json(entitlements_compute(viewer_id=viewer_id))
    if current == row.entitlements:
        return row
    row.version += 1
    row.entitlements = current
    row.save(update_fields=["version", "entitlements", "updated_at"])
    event_record(
        None,
        BillingEventType.ENTITLEMENTS_CHANGED,
        EntitlementsChanged(version=row.version, entitlements=current),
        viewer_id=viewer_id,
    )
    return row


def entitlements_sync_plan(*, plan_id: int) -> int:
    """Recompute the entitlements of every viewer with access through the plan (its features were
    edited, say), in the caller's transaction; how many changed. Each viewer's row is locked in
    turn, and nothing else is locked after it: the lock order holds."""
    viewer_ids = (
        Subscription.objects.filter(plan_id=plan_id, status__in=RUNNING_SUBSCRIPTION_STATUSES)
        .order_by("viewer_id")
        .values_list("viewer_id", flat=True)
        .distinct()
    )
    changed = 0
    for viewer_id in list(viewer_ids):
        before = ViewerEntitlements.objects.filter(viewer_id=viewer_id).values_list("version", flat=True).first()
        changed += entitlements_sync(viewer_id=viewer_id).version != before
    return changed
