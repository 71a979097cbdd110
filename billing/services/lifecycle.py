"""The jobs of a subscription's calendar: end what has run out (subscription_expire_due) and tell
viewers their card is charged soon (the renewal notices)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from billing import clock
from billing.events import BillingEventType, SubscriptionRenewalUpcoming
from billing.models import (
    OPEN_PAYMENT_STATUSES,
    PERMISSION_REVOKED,
    RUNNING_SUBSCRIPTION_STATUSES,
    Payment,
    PaymentKind,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)
from billing.money import Money
from billing.selectors import subscription_list_renewable
from billing.services.dunning import subscription_filter_grace_over
from billing.services.ending import subscription_end
from billing.services.events import event_record


def subscription_expire_due(*, now: datetime | None = None, page_size: int = 200) -> dict[str, int]:
    """End what has run out: periods whose card was revoked, periods canceled at their end, periods
    nobody renews, and past-due subscriptions whose grace is over. A subscription with a charge
    still in flight waits for it; so does a past-due one with a retry still to come."""
    now = now or clock.domain_now()
    return {
        reason: _end_all(due, status, reason=reason, page_size=page_size) for due, status, reason in _expiry_rules(now)
    }


def _expiry_rules(now: datetime) -> list[tuple[QuerySet[Subscription], SubscriptionStatus, str]]:
    charge_in_flight = Payment.objects.filter(
        subscription=OuterRef("pk"), kind=PaymentKind.RENEWAL, status__in=OPEN_PAYMENT_STATUSES
    )
    live = Subscription.objects.exclude(Exists(charge_in_flight))
    card_revoked_for_next_period = Payment.objects.filter(
        subscription=OuterRef("pk"),
        kind=PaymentKind.RENEWAL,
        period_start=OuterRef("current_period_end"),
        status=PaymentStatus.CANCELED,
        cancellation_reason=PERMISSION_REVOKED,
    )
    # A renewal for the next period succeeded without extending the subscription: it was given
    # back (see subscriptions._renewal_unwanted_because), and nothing will charge that period again.
    next_period_given_back = Payment.objects.filter(
        subscription=OuterRef("pk"),
        kind=PaymentKind.RENEWAL,
        period_start=OuterRef("current_period_end"),
        status=PaymentStatus.SUCCEEDED,
    )
    return [
        (
            # The card was revoked when it was charged for the next period: the paid one is over.
            live.filter(
                status__in=RUNNING_SUBSCRIPTION_STATUSES,
                auto_renew=False,
                current_period_end__lte=now,
            ).filter(Exists(card_revoked_for_next_period)),
            SubscriptionStatus.EXPIRED,
            PERMISSION_REVOKED,
        ),
        (
            live.filter(status=SubscriptionStatus.ACTIVE, cancel_at_period_end=True, current_period_end__lte=now),
            SubscriptionStatus.CANCELED,
            "canceled_at_period_end",
        ),
        (
            live.filter(
                status=SubscriptionStatus.ACTIVE, cancel_at_period_end=False, current_period_end__lte=now
            ).filter(
                Q(auto_renew=False)
                | Q(payment_method__isnull=True)
                | Q(payment_method__is_active=False)
                | Exists(next_period_given_back)
            ),
            SubscriptionStatus.EXPIRED,
            "not_renewed",
        ),
        (subscription_filter_grace_over(live, now=now), SubscriptionStatus.EXPIRED, "grace_period_over"),
    ]


def _end_all(due: QuerySet[Subscription], status: SubscriptionStatus, *, reason: str, page_size: int) -> int:
    ended = 0
    while True:
        with transaction.atomic():
            locked = list(
                due.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True)[:page_size]
            )
            # The locking query judged on its snapshot: a renewal charge that a worker holding the
            # row committed meanwhile (the row itself unchanged) is not in it. Judged again now
            # that the rows are ours, so a subscription with a charge in flight waits for it.
            page = list(due.filter(pk__in=locked))
            for subscription in page:
                subscription_end(subscription, status, reason=reason)
        ended += len(page)
        if len(locked) < page_size:
            return ended


def subscription_record_renewal_notices(*, now: datetime | None = None) -> int:
    """Tell viewers (through the outbox) that their card is charged soon, and how much: once per
    period, and again whenever the amount to be charged changed after they were told."""
    now = now or clock.domain_now()
    upcoming = (
        subscription_list_renewable()
        .filter(
            status=SubscriptionStatus.ACTIVE,
            current_period_end__gt=now,
            current_period_end__lte=now + timedelta(days=settings.RENEWAL_NOTICE_DAYS),
        )
        .exclude(renewal_notice_for=F("current_period_end"), renewal_notice_amount=F("plan__price"))
    )
    recorded = 0
    for subscription in upcoming.select_related("plan").iterator():
        price = subscription.plan.price
        with transaction.atomic():
            # The conditional UPDATE claims the notice: two workers never both record it.
            claimed = (
                Subscription.objects.filter(pk=subscription.pk, current_period_end=subscription.current_period_end)
                .exclude(renewal_notice_for=F("current_period_end"), renewal_notice_amount=price)
                .update(renewal_notice_for=F("current_period_end"), renewal_notice_amount=price)
            )
            if claimed:
                _record_renewal_notice(subscription, Money(price, subscription.plan.currency))
                recorded += 1
    return recorded


def subscription_announce_changed_renewal_amount(subscription: Subscription, *, amount: Money) -> None:
    """Call with the subscription locked, as its renewal is charged: if the viewer was told another
    amount for this period (the price changed since, and the notice job has not caught up), they
    are told this one, in the transaction that opens the charge."""
    announced_for_this_period = subscription.renewal_notice_for == subscription.current_period_end
    if not announced_for_this_period or subscription.renewal_notice_amount == amount.amount:
        return
    subscription.renewal_notice_amount = amount.amount
    subscription.save(update_fields=["renewal_notice_amount", "updated_at"])
    _record_renewal_notice(subscription, amount)


def _record_renewal_notice(subscription: Subscription, amount: Money) -> None:
    event_record(
        subscription,
        BillingEventType.SUBSCRIPTION_RENEWAL_UPCOMING,
        SubscriptionRenewalUpcoming(
            charge_on=subscription.current_period_end, amount=amount.amount, currency=amount.currency
        ),
    )
