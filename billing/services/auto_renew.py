"""The viewer's say over automatic renewal: switch it on or off, or remove the saved card."""

import uuid

from django.db import transaction

from billing import clock, locks
from billing.errors import NoPaymentMethod, NotFound, SubscriptionNotActive
from billing.events import AutoRenewOffReason, BillingEventType, SubscriptionAutoRenewChanged
from billing.models import PaymentMethod, Subscription, SubscriptionStatus
from billing.services.events import event_record


def subscription_set_auto_renew(*, viewer_id: uuid.UUID, subscription_id: uuid.UUID, enabled: bool) -> Subscription:
    """On: renew with the saved card (and undo a cancellation at the period's end). Off: the
    subscription ends with its period."""
    with transaction.atomic():
        subscription = locks.subscriptions_for_update().filter(pk=subscription_id, viewer_id=viewer_id).first()
        if subscription is None:
            raise NotFound("There is no such subscription.", field="subscriptionId")
        if not subscription.is_running:
            raise SubscriptionNotActive("Only an active subscription renews.")
        if enabled:
            method = subscription.payment_method
            if method is None or not method.is_active:
                raise NoPaymentMethod("There is no saved card to renew with: subscribe with a card saved.")
            subscription.cancel_at_period_end = False
            if subscription.status == SubscriptionStatus.PAST_DUE and subscription.next_renewal_attempt_at is None:
                subscription.next_renewal_attempt_at = clock.domain_now()
        subscription.auto_renew = enabled
        subscription.save()
        event_record(
            subscription,
            BillingEventType.SUBSCRIPTION_AUTO_RENEW_CHANGED,
            SubscriptionAutoRenewChanged(enabled=enabled),
        )
    return subscription


def payment_method_remove(*, viewer_id: uuid.UUID, payment_method_id: uuid.UUID) -> PaymentMethod:
    """The card is forgotten here; subscriptions that renewed with it stop renewing."""
    with transaction.atomic():
        method = (
            PaymentMethod.objects.select_for_update()
            .filter(pk=payment_method_id, viewer_id=viewer_id, is_active=True)
            .first()
        )
        if method is None:
            raise NotFound("There is no such saved card.", field="id")
        method.is_active = False
        method.save(update_fields=["is_active"])
        for subscription in locks.subscriptions_for_update().filter(payment_method=method, auto_renew=True):
            subscription.auto_renew = False
            subscription.save(update_fields=["auto_renew", "updated_at"])
            event_record(
                subscription,
                BillingEventType.SUBSCRIPTION_AUTO_RENEW_CHANGED,
                SubscriptionAutoRenewChanged(enabled=False, reason=AutoRenewOffReason.CARD_REMOVED),
            )
    return method
