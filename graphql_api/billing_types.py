"""The billing objects a viewer sees. Thin: fields and conversions, no rules."""

from datetime import datetime

import strawberry
import strawberry_django
from strawberry import auto, relay

from billing import models, refund_policy, selectors
from graphql_api.common import Money
from graphql_api.plans import PlanType

SubscriptionStatus = strawberry.enum(models.SubscriptionStatus, name="SubscriptionStatus")
PaymentStatus = strawberry.enum(models.PaymentStatus, name="PaymentStatus")
PaymentKind = strawberry.enum(models.PaymentKind, name="PaymentKind")
RefundStatus = strawberry.enum(models.RefundStatus, name="RefundStatus")
RefundRule = strawberry.enum(refund_policy.RefundRule, name="RefundRule")


@strawberry_django.type(models.PaymentMethod, name="PaymentMethod")
class PaymentMethodType(relay.Node):
    title: auto
    type: auto
    card_last4: auto
    card_type: auto
    expiry_month: auto
    expiry_year: auto


@strawberry_django.type(models.Subscription, name="PlanSubscription")
class SubscriptionType(relay.Node):
    plan: PlanType
    status: SubscriptionStatus
    current_period_start: datetime | None
    current_period_end: datetime | None
    auto_renew: auto
    cancel_at_period_end: auto = strawberry_django.field(
        description="Canceled by the viewer: access lasts to the period's end, and it does not renew."
    )
    canceled_at: datetime | None
    payment_method: PaymentMethodType | None
    created_at: auto

    @strawberry_django.field(
        only=["auto_renew", "cancel_at_period_end", "status", "current_period_end", "next_renewal_attempt_at"],
        select_related=["plan", "payment_method"],
        description="When the saved card is charged next; null when it will not be.",
    )
    def next_payment_at(self, root: models.Subscription) -> datetime | None:
        next_payment = selectors.subscription_next_payment(root)
        return next_payment[0] if next_payment else None

    @strawberry_django.field(
        only=["auto_renew", "cancel_at_period_end", "status", "current_period_end", "next_renewal_attempt_at"],
        select_related=["plan", "payment_method"],
        description="How much the next charge is (today's price of the plan); null when there is none.",
    )
    def next_payment_amount(self, root: models.Subscription) -> Money | None:
        next_payment = selectors.subscription_next_payment(root)
        return Money.of(next_payment[1]) if next_payment else None


@strawberry_django.type(models.Refund, name="Refund")
class RefundType(relay.Node):
    status: RefundStatus
    created_at: auto
    refunded_at: datetime | None

    @strawberry_django.field(only=["amount", "currency"])
    def amount(self, root: models.Refund) -> Money:
        return Money.of(root.money)

    @strawberry_django.field(only=["cancellation_reason"], description="YooKassa's reason, when canceled.")
    def cancellation_reason(self, root: models.Refund) -> str | None:
        return root.cancellation_reason or None


@strawberry.type(name="RefundQuote")
class RefundQuoteType:
    amount: Money
    rule: RefundRule
    period_end: datetime
    refundable: bool
    period_days: int = strawberry.field(
        description="Calendar days of the paid period (0 when there is no period to refund from)."
    )
    unused_days: int = strawberry.field(
        description="Whole days of the period after today, the ones a pro rata refund pays back."
    )

    @classmethod
    def of(cls, quote: refund_policy.RefundQuote) -> "RefundQuoteType":
        return cls(
            amount=Money.of(quote.amount),
            rule=quote.rule,
            period_end=quote.period_end,
            refundable=quote.refundable,
            period_days=quote.period_days,
            unused_days=quote.unused_days,
        )


@strawberry_django.type(models.Payment, name="Payment")
class PaymentType(relay.Node):
    kind: PaymentKind
    status: PaymentStatus
    description: auto
    subscription: SubscriptionType
    created_at: auto
    paid_at: datetime | None

    @strawberry_django.field(only=["amount", "currency"])
    def amount(self, root: models.Payment) -> Money:
        return Money.of(root.money)

    @strawberry_django.field(
        only=["confirmation_url", "status"],
        description="Where the viewer confirms the payment, while it is pending.",
    )
    def confirmation_url(self, root: models.Payment) -> str | None:
        return root.confirmation_url if root.is_open and root.confirmation_url else None

    @strawberry_django.field(only=["cancellation_reason"], description="YooKassa's reason, when canceled.")
    def cancellation_reason(self, root: models.Payment) -> str | None:
        return root.cancellation_reason or None

    @strawberry_django.field(only=["refunded_amount", "currency"], description="The sum of succeeded refunds.")
    def refunded_amount(self, root: models.Payment) -> Money:
        return Money(amount=root.refunded_amount, currency=root.currency)

    refunds: list[RefundType] = strawberry_django.field(description="Refunds of this payment, newest first.")
