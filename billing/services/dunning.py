"""Dunning: what follows a failed renewal. The subscription goes past due (the viewer keeps
access), the card is tried again on the schedule of DUNNING_RETRY_DAYS (counted from the first
failure), the viewer is told each time (the renewal-failed and past-due events), and it ends after
the last failure, or when its grace (DUNNING_GRACE_DAYS after the period's end) is over with no
retry to come. A card whose payer withdrew consent is never tried again.

The retries are charged by services.renewals (the same run as renewals, from the queue here); the
grace rule is judged with the other ends by services.lifecycle's expiry job.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet

from billing import clock
from billing.events import (
    AutoRenewOffReason,
    BillingEventType,
    SubscriptionAutoRenewChanged,
    SubscriptionPastDue,
    SubscriptionRenewalFailed,
)
from billing.models import PERMISSION_REVOKED, Payment, Subscription, SubscriptionStatus
from billing.selectors import subscription_list_renewable
from billing.services.ending import subscription_end
from billing.services.events import event_record


def subscription_dun(subscription: Subscription, payment: Payment) -> None:
    """A renewal failed (call with both locked, payment first): past due, then retries on the
    dunning schedule (DUNNING_RETRY_DAYS, counted from the first failure), then the end."""
    now = clock.domain_now()
    subscription.renewal_failures += 1
    card_revoked = payment.cancellation_reason == PERMISSION_REVOKED
    if subscription.status == SubscriptionStatus.ACTIVE and not card_revoked:
        subscription.move_to(SubscriptionStatus.PAST_DUE)
        subscription.past_due_since = now
    event_record(
        subscription,
        BillingEventType.SUBSCRIPTION_RENEWAL_FAILED,
        SubscriptionRenewalFailed(attempt=subscription.renewal_failures, reason=payment.cancellation_reason),
        payment=payment,
    )
    retry_days = settings.DUNNING_RETRY_DAYS
    if card_revoked:
        _stop_renewing_with_revoked_card(subscription, payment, now=now)
    elif subscription.renewal_failures > len(retry_days):
        subscription_end(
            subscription,
            SubscriptionStatus.EXPIRED,
            reason="renewal_failed",
            payment=payment,
            attempts=subscription.renewal_failures,
        )
    else:
        subscription.next_renewal_attempt_at = subscription.past_due_since + timedelta(
            days=retry_days[subscription.renewal_failures - 1]
        )
        subscription.save()
        event_record(
            subscription,
            BillingEventType.SUBSCRIPTION_PAST_DUE,
            SubscriptionPastDue(next_attempt_at=subscription.next_renewal_attempt_at),
        )


def _stop_renewing_with_revoked_card(subscription: Subscription, payment: Payment, *, now: datetime) -> None:
    """The viewer withdrew consent to autopayments: no more tries with this card, none at all.

    The charge runs ahead of the period's end (RENEWAL_LEAD_TIME_HOURS), and what was paid for stays
    the viewer's: the subscription keeps its status (an active one is not made past due, there is
    nothing left to retry) until its period is over. Then it expires, here if that moment has
    passed already, else by the expiry job (subscription_expire_due, reason permission_revoked).
    """
    payment.payment_method.is_active = False
    payment.payment_method.save(update_fields=["is_active"])
    subscription.auto_renew = False
    subscription.next_renewal_attempt_at = None
    if subscription.current_period_end <= now:
        subscription_end(subscription, SubscriptionStatus.EXPIRED, reason=PERMISSION_REVOKED, payment=payment)
        return
    subscription.save()
    event_record(
        subscription,
        BillingEventType.SUBSCRIPTION_AUTO_RENEW_CHANGED,
        SubscriptionAutoRenewChanged(enabled=False, reason=AutoRenewOffReason.PERMISSION_REVOKED),
    )


def subscription_list_retry_due(*, now: datetime) -> QuerySet[Subscription]:
    """Past-due subscriptions whose next dunning attempt has come."""
    return subscription_list_renewable().filter(status=SubscriptionStatus.PAST_DUE, next_renewal_attempt_at__lte=now)


def subscription_filter_grace_over(subscriptions: QuerySet[Subscription], *, now: datetime) -> QuerySet[Subscription]:
    """The past-due ones among `subscriptions` whose grace is over and that have no retry to come.

    Retries count from the first failure, grace from the period's end: a late first attempt would
    otherwise lose its last retries to the grace period. The last failure ends it instead.
    """
    retry_to_come = subscription_list_renewable().filter(next_renewal_attempt_at__isnull=False)
    return subscriptions.filter(
        status=SubscriptionStatus.PAST_DUE,
        current_period_end__lte=now - timedelta(days=settings.DUNNING_GRACE_DAYS),
    ).exclude(pk__in=retry_to_come.values("pk"))
