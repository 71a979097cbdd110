"""Subscriptions, payments and saved payment methods, with the invariants the database keeps.

Statuses move forward only. The allowed moves are listed here, next to each model; the services
apply them under a row lock or a conditional UPDATE, so two processes can never both make one.
"""

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q, Sum

from billing import clock
from billing.errors import IllegalTransition
from billing.events import EventPayload, payload_parse
from billing.money import Money
from plans.models import Plan

CURRENCY_REGEX = r"^[A-Z]{3}$"


class StateMachine:
    """A model whose `status` moves only along its `transitions` (status -> the statuses it may
    move to); services make each move under a row lock or a conditional UPDATE."""

    transitions: dict

    def move_to(self, status: str) -> None:
        if status not in self.transitions[self.status]:
            raise IllegalTransition(f"{self._meta.model_name} {self.id}: {self.status} -> {status}")
        self.status = status


class ProviderRow(StateMachine):
    """A payment or refund: an amount of money that YooKassa creates under the row's own key, open
    while in `open_statuses`."""

    open_statuses: tuple

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    @property
    def is_open(self) -> bool:
        return self.status in self.open_statuses


class SubscriptionStatus(models.TextChoices):
    PENDING = "pending", "Waiting for the first payment"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"
    EXPIRED = "expired", "Expired"
    FAILED = "failed", "First payment failed"


# Not ended yet (waiting for its first payment, or running): a viewer has at most one subscription
# in these statuses (a database constraint), and checkout answers with that one.
OPEN_SUBSCRIPTION_STATUSES = (SubscriptionStatus.PENDING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
# Started and not ended: a period was paid for, the viewer may watch (past due keeps access through
# its grace), and the subscription can be renewed, retried, have auto-renewal switched, or be canceled.
RUNNING_SUBSCRIPTION_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
SUBSCRIPTION_TRANSITIONS = {
    SubscriptionStatus.PENDING: {SubscriptionStatus.ACTIVE, SubscriptionStatus.FAILED},
    SubscriptionStatus.ACTIVE: {SubscriptionStatus.PAST_DUE, SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED},
    SubscriptionStatus.PAST_DUE: {SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED},
    SubscriptionStatus.CANCELED: set(),
    SubscriptionStatus.EXPIRED: set(),
    SubscriptionStatus.FAILED: set(),
}


class PaymentMethod(models.Model):
    """A card YooKassa saved for autopayments, as the viewer sees it ("Bank card *4444")."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    viewer_id = models.UUIDField(db_index=True)
    provider_method_id = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=32)
    title = models.CharField(max_length=100)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_type = models.CharField(max_length=32, blank=True)
    expiry_month = models.CharField(max_length=2, blank=True)
    expiry_year = models.CharField(max_length=4, blank=True)
    is_active = models.BooleanField(default=True, help_text="Off once the viewer removes it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class Subscription(StateMachine, models.Model):
    transitions = SUBSCRIPTION_TRANSITIONS

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    viewer_id = models.UUIDField()
    viewer_email = models.EmailField(blank=True, help_text="As the Auth service last told us.")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.PENDING)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    auto_renew = models.BooleanField(default=False)
    # The viewer canceled: access lasts to the period's end, then the subscription ends.
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    # Dunning: failed renewal attempts for the current period, since when, and the next try.
    renewal_failures = models.PositiveSmallIntegerField(default=0)
    past_due_since = models.DateTimeField(null=True, blank=True)
    next_renewal_attempt_at = models.DateTimeField(null=True, blank=True)
    # The period end the upcoming-renewal notice was last recorded for, and the amount it announced:
    # one notice per period, and another whenever the amount to be charged changes.
    renewal_notice_for = models.DateTimeField(null=True, blank=True)
    renewal_notice_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.SET_NULL, null=True, blank=True, related_name="subscriptions"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["viewer_id"],
                condition=Q(status__in=OPEN_SUBSCRIPTION_STATUSES),
                name="subscription_one_live_per_viewer",
            ),
            models.CheckConstraint(
                condition=Q(current_period_end__gt=models.F("current_period_start"))
                | Q(current_period_start__isnull=True, current_period_end__isnull=True),
                name="subscription_period_ends_after_start",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=list(RUNNING_SUBSCRIPTION_STATUSES)) | Q(current_period_end__isnull=False),
                name="subscription_active_has_period",
            ),
            models.CheckConstraint(
                condition=~Q(cancel_at_period_end=True, auto_renew=True), name="subscription_ending_does_not_renew"
            ),
        ]
        indexes = [
            models.Index(fields=["viewer_id", "-created_at"], name="subscription_viewer_recent"),
            models.Index(
                fields=["current_period_end"],
                name="subscription_live_period_end",
                condition=Q(status__in=list(RUNNING_SUBSCRIPTION_STATUSES)),
            ),
            models.Index(
                fields=["next_renewal_attempt_at"],
                name="subscription_dunning_due",
                condition=Q(status=SubscriptionStatus.PAST_DUE),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.name} for {self.viewer_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        """Not ended yet: see OPEN_SUBSCRIPTION_STATUSES."""
        return self.status in OPEN_SUBSCRIPTION_STATUSES

    @property
    def is_running(self) -> bool:
        """Started and not ended: see RUNNING_SUBSCRIPTION_STATUSES."""
        return self.status in RUNNING_SUBSCRIPTION_STATUSES


class PaymentKind(models.TextChoices):
    INITIAL = "initial", "Initial"
    RENEWAL = "renewal", "Renewal"


class PaymentStatus(models.TextChoices):
    # The row exists and holds its Idempotence-Key; YooKassa has not (yet) confirmed the payment.
    CREATING = "creating", "Creating"
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    CANCELED = "canceled", "Canceled"


OPEN_PAYMENT_STATUSES = (PaymentStatus.CREATING, PaymentStatus.PENDING)
# YooKassa's cancellation reason for a charge of a saved card whose payer withdrew consent to
# autopayments: the card is never charged again.
PERMISSION_REVOKED = "permission_revoked"
# An open payment or refund is first looked up at YooKassa this long after it was created.
FIRST_PROVIDER_CHECK = timedelta(minutes=5)


def first_provider_check_at() -> datetime:
    """When the janitor first looks at a new open row. On real time, like the janitor itself: a row
    scheduled on billing's travelling clock (a `run_billing_jobs --as-of` run) would otherwise be
    ignored by the real janitor until real time caught up with that moment."""
    return clock.real_now() + FIRST_PROVIDER_CHECK


PAYMENT_TRANSITIONS = {
    PaymentStatus.CREATING: {PaymentStatus.PENDING, PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED},
    PaymentStatus.PENDING: {PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED},
    PaymentStatus.SUCCEEDED: set(),
    PaymentStatus.CANCELED: set(),
}


class Payment(ProviderRow, models.Model):
    transitions = PAYMENT_TRANSITIONS
    open_statuses = OPEN_PAYMENT_STATUSES

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    viewer_id = models.UUIDField()
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=8, choices=PaymentKind.choices)
    # What was charged, fixed at creation: later price changes of the plan do not touch it.
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.CREATING)
    # Sent with every call that creates this payment at YooKassa, retries included.
    idempotence_key = models.CharField(max_length=64, unique=True)
    provider_payment_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    return_url = models.URLField(max_length=2048, blank=True)
    save_payment_method = models.BooleanField(default=False)
    # 54-FZ receipt data as sent at creation (blank: no receipt), so every retry sends the same.
    receipt_email = models.EmailField(blank=True)
    receipt_vat_code = models.PositiveSmallIntegerField(null=True, blank=True)
    confirmation_url = models.URLField(max_length=2048, blank=True)
    cancellation_party = models.CharField(max_length=32, blank=True)
    cancellation_reason = models.CharField(max_length=64, blank=True)
    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.SET_NULL, null=True, blank=True, related_name="payments"
    )
    provider_object = models.JSONField(null=True, blank=True, help_text="YooKassa's object as last fetched.")
    paid_at = models.DateTimeField(null=True, blank=True)
    # The sum of this payment's succeeded refunds.
    refunded_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    # Renewals: the start of the period this payment pays for (the end of the one before).
    period_start = models.DateTimeField(null=True, blank=True)
    # Reconciliation: how often YooKassa was asked about this open payment, and when to ask next.
    check_attempts = models.PositiveSmallIntegerField(default=0)
    next_check_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=Decimal(0)), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=Decimal(0), refunded_amount__lte=models.F("amount")),
                name="payment_refunds_never_exceed_amount",
            ),
            models.CheckConstraint(condition=Q(currency__regex=CURRENCY_REGEX), name="payment_currency_iso"),
            # Pending or succeeded only by YooKassa's word; a refusal ends a payment it never knew.
            models.CheckConstraint(
                condition=Q(status__in=[PaymentStatus.CREATING, PaymentStatus.CANCELED])
                | Q(provider_payment_id__isnull=False),
                name="payment_open_or_paid_is_known_to_provider",
            ),
            models.CheckConstraint(
                condition=~Q(status=PaymentStatus.SUCCEEDED) | Q(paid_at__isnull=False),
                name="payment_succeeded_has_paid_at",
            ),
            # A second checkout of the same subscription while one is open returns the open one.
            models.UniqueConstraint(
                fields=["subscription"],
                condition=Q(status__in=OPEN_PAYMENT_STATUSES),
                name="payment_one_open_per_subscription",
            ),
            # One renewal charge per period: declined attempts (canceled) make way for retries.
            models.UniqueConstraint(
                fields=["subscription", "period_start"],
                condition=Q(kind=PaymentKind.RENEWAL) & ~Q(status=PaymentStatus.CANCELED),
                name="payment_one_renewal_per_period",
            ),
            models.CheckConstraint(
                condition=~Q(kind=PaymentKind.RENEWAL) | Q(period_start__isnull=False, payment_method__isnull=False),
                name="payment_renewal_has_period_and_method",
            ),
        ]
        indexes = [
            models.Index(fields=["viewer_id", "-created_at", "-id"], name="payment_viewer_recent"),
            # Reconciliation's queue: open payments by when to ask YooKassa about them next.
            models.Index(
                fields=["next_check_at"],
                name="payment_open_next_check",
                condition=Q(status__in=OPEN_PAYMENT_STATUSES),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} payment {self.amount} {self.currency} ({self.status})"

    def refundable_left(self) -> Money:
        """What can still be given back of this payment: what was paid, minus what succeeded
        refunds returned and what refunds still in flight are returning. Ask it with the payment
        locked when a refund is to be opened against it (the one rule for "money left")."""
        in_flight = self.refunds.filter(status__in=OPEN_REFUND_STATUSES).aggregate(total=Sum("amount"))["total"]
        return Money(self.amount - self.refunded_amount - (in_flight or 0), self.currency)


class RefundStatus(models.TextChoices):
    CREATING = "creating", "Creating"
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    CANCELED = "canceled", "Canceled"


OPEN_REFUND_STATUSES = (RefundStatus.CREATING, RefundStatus.PENDING)
REFUND_TRANSITIONS = {
    RefundStatus.CREATING: {RefundStatus.PENDING, RefundStatus.SUCCEEDED, RefundStatus.CANCELED},
    RefundStatus.PENDING: {RefundStatus.SUCCEEDED, RefundStatus.CANCELED},
    RefundStatus.SUCCEEDED: set(),
    RefundStatus.CANCELED: set(),
}


class RefundInitiator(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    # Billing itself: money that arrived for a subscription that had already ended.
    SYSTEM = "system", "Billing"


class Refund(ProviderRow, models.Model):
    """Money going back for a payment; at most one in flight per payment, never above what was paid."""

    transitions = REFUND_TRANSITIONS
    open_statuses = OPEN_REFUND_STATUSES

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=RefundStatus.choices, default=RefundStatus.CREATING)
    idempotence_key = models.CharField(max_length=64, unique=True)
    provider_refund_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    reason = models.CharField(max_length=250)
    initiator = models.CharField(max_length=16, choices=RefundInitiator.choices)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Succeeding ends the subscription the payment paid for (a cancellation with a refund).
    ends_subscription = models.BooleanField(default=False)
    cancellation_party = models.CharField(max_length=32, blank=True)
    cancellation_reason = models.CharField(max_length=64, blank=True)
    provider_object = models.JSONField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    check_attempts = models.PositiveSmallIntegerField(default=0)
    next_check_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=Decimal(0)), name="refund_amount_positive"),
            models.CheckConstraint(condition=Q(currency__regex=CURRENCY_REGEX), name="refund_currency_iso"),
            models.UniqueConstraint(
                fields=["payment"],
                condition=Q(status__in=OPEN_REFUND_STATUSES),
                name="refund_one_in_flight_per_payment",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[RefundStatus.CREATING, RefundStatus.CANCELED])
                | Q(provider_refund_id__isnull=False),
                name="refund_open_or_done_is_known_to_provider",
            ),
            models.CheckConstraint(
                condition=Q(initiator=RefundInitiator.OPERATOR, operator__isnull=False)
                | (~Q(initiator=RefundInitiator.OPERATOR) & Q(operator__isnull=True)),
                name="refund_operator_iff_operator_initiated",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_check_at"], name="refund_open_next_check", condition=Q(status__in=OPEN_REFUND_STATUSES)
            )
        ]

    def __str__(self) -> str:
        return f"refund {self.amount} {self.currency} ({self.status})"


class ClientRequest(models.Model):
    """A viewer's money mutation under their idempotency key: a repeat returns the first result."""

    id = models.BigAutoField(primary_key=True)
    viewer_id = models.UUIDField()
    key = models.CharField(max_length=128)
    operation = models.CharField(max_length=32)
    # A digest of the input: the same key with other input is refused.
    fingerprint = models.CharField(max_length=64)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    refund = models.ForeignKey(Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["viewer_id", "key"], name="client_request_key_unique_per_viewer")
        ]
        # Retention deletes the oldest first, a batch at a time.
        indexes = [models.Index(fields=["created_at"], name="client_request_created")]

    def __str__(self) -> str:
        return f"{self.operation} {self.key}"


class BillingEvent(models.Model):
    """The outbox: what happened, written in the same transaction as the change it describes.

    Emails, the Auth service and live pushes consume it; billing knows none of them.
    """

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=64)
    viewer_id = models.UUIDField()
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    refund = models.ForeignKey(Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["viewer_id", "id"], name="event_viewer"),
            # Consumers read a recent window of the outbox (by when rows were written, since ids
            # can commit out of order) without scanning all of it.
            models.Index(fields=["created_at"], name="event_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.id}"

    def typed_payload(self) -> EventPayload:
        """The payload as the class of this row's type (billing.events); match on `type` to narrow it."""
        return payload_parse(self.type, self.payload)


class ViewerEntitlements(models.Model):
    """What a viewer may watch, as last recorded, and its version: the version goes up by one in the
    transaction of every change that alters the entitlements, and only then (billing.services.entitlements).
    A receiver keeps the highest version it has seen and drops anything older."""

    viewer_id = models.UUIDField(primary_key=True)
    version = models.BigIntegerField(default=0)
    # billing.entitlements.Entitlements.to_json() as of `version`.
    entitlements = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "viewer entitlements"
        constraints = [models.CheckConstraint(condition=Q(version__gte=0), name="entitlements_version_not_negative")]

    def __str__(self) -> str:
        return f"entitlements of {self.viewer_id} v{self.version}"
