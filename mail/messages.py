"""What each billing event tells its viewer: the one place that decides who gets what.

A composer turns an event into a `Message`: the template (mail/templates/mail/<template>.txt and
.html), the subject and the facts, read from the event's payload and the rows it names. Events
not listed here send nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from billing.events import (
    AutoRenewOffReason,
    BillingEventType,
    EventPayload,
    RefundCanceled,
    SubscriptionActivated,
    SubscriptionAutoRenewChanged,
    SubscriptionCancelScheduled,
    SubscriptionEnded,
    SubscriptionFailed,
    SubscriptionPastDue,
    SubscriptionRenewalFailed,
    SubscriptionRenewalUpcoming,
    SubscriptionRenewed,
)
from billing.models import BillingEvent, Subscription, SubscriptionStatus
from billing.money import Money
from mail.reasons import payment_reason, refund_reason
from mail.templatetags.mail_format import day, money

P = TypeVar("P", bound=EventPayload)


@dataclass(frozen=True)
class Message:
    template: str
    subject: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    # Set when the event deserves no email of its own (the row records why).
    skip_reason: str = ""


def _payload(event: BillingEvent, payload_class: type[P]) -> P:
    payload = event.typed_payload()
    if not isinstance(payload, payload_class):
        raise TypeError(f"A {event.type} event carries no {payload_class.__name__}.")
    return payload


def _facts(event: BillingEvent, **facts) -> dict[str, Any]:
    subscription: Subscription = event.subscription
    method = subscription.payment_method
    return {"plan": subscription.plan.name, "card": method.title if method else "", **facts}


def _activated(event: BillingEvent) -> Message:
    subscription = event.subscription
    payload = _payload(event, SubscriptionActivated)
    plan = subscription.plan.name
    return Message(
        "subscription_activated",
        f"Your {plan} subscription is active",
        _facts(
            event,
            amount=event.payment.money,
            period_start=payload.period_start or subscription.current_period_start,
            period_end=payload.period_end or subscription.current_period_end,
            # As of the activation, whatever happened since: billing renews with the card this payment saved.
            auto_renew=event.payment.payment_method_id is not None,
        ),
    )


def _first_payment_failed(event: BillingEvent) -> Message:
    plan = event.subscription.plan.name
    return Message(
        "first_payment_failed",
        f"Your payment for {plan} didn't go through",
        _facts(event, amount=event.payment.money, reason=payment_reason(_payload(event, SubscriptionFailed).reason)),
    )


def _renewal_upcoming(event: BillingEvent) -> Message:
    subscription = event.subscription
    payload = _payload(event, SubscriptionRenewalUpcoming)
    charge_on = payload.charge_on or subscription.current_period_end
    plan = subscription.plan
    amount = Money.of(plan.price if payload.amount is None else payload.amount, payload.currency or plan.currency)
    return Message(
        "renewal_upcoming",
        f"Your {plan.name} subscription renews on {day(charge_on)}",
        _facts(event, amount=amount, charge_on=charge_on),
    )


def _renewed(event: BillingEvent) -> Message:
    subscription = event.subscription
    payload = _payload(event, SubscriptionRenewed)
    period_end = payload.period_end or subscription.current_period_end
    return Message(
        "subscription_renewed",
        f"Your {subscription.plan.name} subscription is renewed until {day(period_end)}",
        _facts(
            event,
            amount=event.payment.money,
            period_start=payload.period_start or subscription.current_period_start,
            period_end=period_end,
        ),
    )


def _renewal_failed(event: BillingEvent) -> Message:
    """`subscription.past_due`: billing records it, with the next try, right after the failure
    (`subscription.renewal_failed`, in the same transaction), which says why and how much."""
    subscription = event.subscription
    failure = (
        BillingEvent.objects.filter(
            viewer_id=event.viewer_id,
            subscription_id=subscription.pk,
            type=BillingEventType.SUBSCRIPTION_RENEWAL_FAILED,
            id__lt=event.id,
        )
        .select_related("payment")
        .order_by("-id")
        .first()
    )
    told = _payload(failure, SubscriptionRenewalFailed) if failure else SubscriptionRenewalFailed()
    attempt = told.attempt
    still = " still" if attempt > 1 else ""
    return Message(
        "renewal_failed",
        f"We{still} couldn't renew your {subscription.plan.name} subscription",
        _facts(
            event,
            amount=failure.payment.money if failure and failure.payment else None,
            reason=payment_reason(told.reason),
            attempt=attempt,
            next_attempt_at=_payload(event, SubscriptionPastDue).next_attempt_at
            or subscription.next_renewal_attempt_at,
        ),
    )


def _expired(event: BillingEvent) -> Message:
    payload = _payload(event, SubscriptionEnded)
    declined = event.payment.cancellation_reason if event.payment else ""
    return Message(
        "subscription_expired",
        f"Your {event.subscription.plan.name} subscription has ended",
        _facts(
            event,
            reason=payload.reason,
            decline=payment_reason(declined) if declined else "",
            attempts=payload.attempts,
            period_end=event.subscription.current_period_end,
        ),
    )


def _cancel_scheduled(event: BillingEvent) -> Message:
    subscription = event.subscription
    ends_at = _payload(event, SubscriptionCancelScheduled).ends_at or subscription.current_period_end
    return Message(
        "cancel_scheduled",
        f"Your {subscription.plan.name} subscription ends on {day(ends_at)}",
        _facts(event, ends_at=ends_at),
    )


def _canceled(event: BillingEvent) -> Message:
    subscription = event.subscription
    refund = event.refund
    plan = subscription.plan.name
    subject = f"Your {plan} subscription is canceled"
    if refund is not None:
        subject += f" and {money(refund.money)} refunded"
    return Message(
        "subscription_canceled",
        subject,
        _facts(
            event,
            refund=refund.money if refund else None,
            at_period_end=_payload(event, SubscriptionEnded).reason == "canceled_at_period_end",
            ended_at=subscription.current_period_end if refund is None else event.created_at,
        ),
    )


def _auto_renew_changed(event: BillingEvent) -> Message:
    subscription = event.subscription
    plan = subscription.plan.name
    facts = _facts(
        event,
        period_end=subscription.current_period_end,
        amount=Money(subscription.plan.price, subscription.plan.currency),
        past_due=subscription.status == SubscriptionStatus.PAST_DUE,
    )
    payload = _payload(event, SubscriptionAutoRenewChanged)
    if payload.enabled:
        return Message("auto_renew_on", f"Auto-renewal of your {plan} subscription is on", facts)
    if payload.reason == AutoRenewOffReason.CARD_REMOVED:
        return Message("card_removed", f"Your card is removed: {plan} will not renew", facts)
    if payload.reason == AutoRenewOffReason.PERMISSION_REVOKED:
        return Message("autopayments_revoked", f"Automatic payments are off: {plan} will not renew", facts)
    return Message("auto_renew_off", f"Auto-renewal of your {plan} subscription is off", facts)


def _refund_succeeded(event: BillingEvent) -> Message:
    refund = event.refund
    told_in_cancellation = BillingEvent.objects.filter(
        viewer_id=event.viewer_id, type=BillingEventType.SUBSCRIPTION_CANCELED, refund_id=refund.pk
    ).exists()
    if told_in_cancellation:
        return Message("refund_succeeded", skip_reason="told in the cancellation email")
    return Message(
        "refund_succeeded",
        f"Your refund of {money(refund.money)} is on its way",
        _facts(event, amount=refund.money, paid_at=refund.payment.paid_at, paid=refund.payment.money),
    )


def _refund_canceled(event: BillingEvent) -> Message:
    refund = event.refund
    subscription = event.subscription
    return Message(
        "refund_canceled",
        f"Your refund of {money(refund.money)} didn't go through",
        _facts(
            event,
            amount=refund.money,
            reason=refund_reason(_payload(event, RefundCanceled).reason),
            still_active=subscription.is_running,
            period_end=subscription.current_period_end,
        ),
    )


COMPOSERS: dict[BillingEventType, Callable[[BillingEvent], Message]] = {
    BillingEventType.SUBSCRIPTION_ACTIVATED: _activated,
    BillingEventType.SUBSCRIPTION_FAILED: _first_payment_failed,
    BillingEventType.SUBSCRIPTION_RENEWAL_UPCOMING: _renewal_upcoming,
    BillingEventType.SUBSCRIPTION_RENEWED: _renewed,
    # SUBSCRIPTION_RENEWAL_FAILED is told by what follows it: past due (another try) or expired.
    BillingEventType.SUBSCRIPTION_PAST_DUE: _renewal_failed,
    BillingEventType.SUBSCRIPTION_EXPIRED: _expired,
    BillingEventType.SUBSCRIPTION_CANCEL_SCHEDULED: _cancel_scheduled,
    BillingEventType.SUBSCRIPTION_CANCELED: _canceled,
    BillingEventType.SUBSCRIPTION_AUTO_RENEW_CHANGED: _auto_renew_changed,
    BillingEventType.REFUND_SUCCEEDED: _refund_succeeded,
    BillingEventType.REFUND_CANCELED: _refund_canceled,
}
MAIL_EVENT_TYPES = frozenset(COMPOSERS)


def message_compose(*, event: BillingEvent) -> Message:
    return COMPOSERS[BillingEventType(event.type)](event)
