"""Billing's reads, scoped to a viewer wherever a viewer asks."""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet

from billing import clock
from billing.models import (
    OPEN_REFUND_STATUSES,
    RUNNING_SUBSCRIPTION_STATUSES,
    Payment,
    PaymentKind,
    PaymentMethod,
    PaymentStatus,
    Refund,
    Subscription,
    SubscriptionStatus,
)
from billing.money import Money


def subscription_get_active_for_viewer(*, viewer_id: uuid.UUID) -> Subscription | None:
    """The subscription the viewer may watch with (past due keeps access through its grace)."""
    return Subscription.objects.filter(viewer_id=viewer_id, status__in=RUNNING_SUBSCRIPTION_STATUSES).first()


def subscription_list_for_viewer(*, viewer_id: uuid.UUID) -> QuerySet[Subscription]:
    return Subscription.objects.filter(viewer_id=viewer_id).order_by("-created_at")


def payment_list_for_viewer(*, viewer_id: uuid.UUID) -> QuerySet[Payment]:
    """Newest first, with the id breaking ties, so cursors are stable."""
    return Payment.objects.filter(viewer_id=viewer_id).order_by("-created_at", "-id")


def payment_get_for_viewer(*, viewer_id: uuid.UUID, payment_id: uuid.UUID) -> Payment | None:
    """Another viewer's payment reads exactly like one that does not exist."""
    return Payment.objects.filter(viewer_id=viewer_id, pk=payment_id).first()


def payment_get_by_provider_id(*, provider_payment_id: str) -> Payment | None:
    return Payment.objects.filter(provider_payment_id=provider_payment_id).first()


def payment_method_list_for_viewer(*, viewer_id: uuid.UUID) -> QuerySet[PaymentMethod]:
    return PaymentMethod.objects.filter(viewer_id=viewer_id, is_active=True).order_by("-created_at")


def subscription_get_for_viewer(*, viewer_id: uuid.UUID, subscription_id: uuid.UUID) -> Subscription | None:
    return Subscription.objects.select_related("plan").filter(viewer_id=viewer_id, pk=subscription_id).first()


def refund_get_by_provider_id(*, provider_refund_id: str) -> Refund | None:
    return Refund.objects.filter(provider_refund_id=provider_refund_id).first()


def subscription_next_payment(subscription: Subscription) -> tuple[datetime, Money] | None:
    """When the saved card is charged next, and how much; None when it will not be."""
    method = subscription.payment_method
    if not subscription.auto_renew or subscription.cancel_at_period_end or method is None or not method.is_active:
        return None
    amount = Money(subscription.plan.price, subscription.plan.currency)
    if subscription.status == SubscriptionStatus.PAST_DUE and subscription.next_renewal_attempt_at:
        return max(subscription.next_renewal_attempt_at, clock.domain_now()), amount
    if subscription.status == SubscriptionStatus.ACTIVE:
        charge_at = subscription.current_period_end - timedelta(hours=settings.RENEWAL_LEAD_TIME_HOURS)
        return max(charge_at, clock.domain_now()), amount
    return None


def subscription_list_renewable() -> QuerySet[Subscription]:
    """Subscriptions whose saved card may be charged for the next period: auto-renewing with an
    active card, not ending, no charge for that period yet, and no cancellation refund under way
    (the viewer asked to end it; the refund only takes time)."""
    charge_for_next_period = Payment.objects.filter(
        subscription=OuterRef("pk"), kind=PaymentKind.RENEWAL, period_start=OuterRef("current_period_end")
    ).exclude(status=PaymentStatus.CANCELED)
    return (
        Subscription.objects.filter(auto_renew=True, cancel_at_period_end=False, payment_method__is_active=True)
        .exclude(Exists(charge_for_next_period))
        .exclude(Exists(cancellation_refunds_in_flight(OuterRef("pk"))))
    )


def cancellation_refunds_in_flight(subscription) -> QuerySet[Refund]:
    """Open refunds that end `subscription` (a pk, or an OuterRef to one) when they succeed."""
    return Refund.objects.filter(
        payment__subscription=subscription, ends_subscription=True, status__in=OPEN_REFUND_STATUSES
    )
