"""The billing objects a viewer sees. Thin: fields and conversions, no rules."""

from datetime import datetime

import strawberry
import strawberry_django
from strawberry import auto, relay

from billing import models
from graphql_api.common import Money
from graphql_api.plans import PlanType

SubscriptionStatus = strawberry.enum(models.SubscriptionStatus, name="SubscriptionStatus")
PaymentStatus = strawberry.enum(models.PaymentStatus, name="PaymentStatus")
PaymentKind = strawberry.enum(models.PaymentKind, name="PaymentKind")


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
    payment_method: PaymentMethodType | None
    created_at: auto


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
