"""Row locks, in the one order every service takes them: payment, then refund, then subscription,
then the viewer's entitlements.

Taking them in a fixed order is what keeps two services that touch the same rows from
deadlocking. The entitlements row is always last: `entitlements_sync` takes it from
`event_record`, after the change it records is saved, and nothing is locked after it.
`of=("self",)` locks only the row asked for, not the rows joined to it.
"""

from django.db.models import QuerySet

from billing.models import Payment, Refund, Subscription, ViewerEntitlements


def payments_for_update() -> QuerySet[Payment]:
    return Payment.objects.select_for_update(of=("self",)).select_related("subscription__plan", "payment_method")


def refunds_for_update() -> QuerySet[Refund]:
    return Refund.objects.select_for_update(of=("self",)).select_related("payment")


def subscriptions_for_update() -> QuerySet[Subscription]:
    return Subscription.objects.select_for_update(of=("self",)).select_related("plan")


def viewer_entitlements_for_update() -> QuerySet[ViewerEntitlements]:
    return ViewerEntitlements.objects.select_for_update()
