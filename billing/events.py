"""The outbox's contract: every event billing records, by type, with the payload each one carries.

Producers call `event_record(subscription, event_type, payload)` with one of the payload classes
below for that type (`PAYLOAD_CLASSES`); a per-viewer event (entitlements.changed) has no
subscription and is recorded with `viewer_id=` instead. Consumers match on `BillingEventType` and read
`BillingEvent.typed_payload()`. The stored values (BillingEvent.type and its JSON payload) are read
by services outside this repo and by rows written long ago: a value here never changes.

In the JSON: a Decimal is its string ("299.00"), a datetime its ISO 8601 text, an enum its value;
a field that is None and defaults to None is left out (older rows may lack it too).
"""

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum, StrEnum
from functools import cache
from typing import Any, ClassVar

from django.db import models

from billing.gateway.interface import ProviderPaymentStatus


class BillingEventType(models.TextChoices):
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_ACTIVATED = "subscription.activated"
    # The first payment did not go through: the subscription never started.
    SUBSCRIPTION_FAILED = "subscription.failed"
    SUBSCRIPTION_RENEWAL_UPCOMING = "subscription.renewal_upcoming"
    SUBSCRIPTION_RENEWED = "subscription.renewed"
    SUBSCRIPTION_RENEWAL_FAILED = "subscription.renewal_failed"
    SUBSCRIPTION_PAST_DUE = "subscription.past_due"
    SUBSCRIPTION_AUTO_RENEW_CHANGED = "subscription.auto_renew_changed"
    SUBSCRIPTION_CANCEL_SCHEDULED = "subscription.cancel_scheduled"
    SUBSCRIPTION_CANCELED = "subscription.canceled"
    SUBSCRIPTION_EXPIRED = "subscription.expired"
    PAYMENT_CREATED = "payment.created"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_CANCELED = "payment.canceled"
    # YooKassa reports a final status that contradicts ours: left for an operator.
    PAYMENT_PROVIDER_CONFLICT = "payment.provider_conflict"
    REFUND_CREATED = "refund.created"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_CANCELED = "refund.canceled"
    REFUND_PROVIDER_CONFLICT = "refund.provider_conflict"
    RECONCILIATION_FAILED = "reconciliation.failed"
    # Per viewer (no subscription): what the viewer may watch changed; see billing.entitlements.
    ENTITLEMENTS_CHANGED = "entitlements.changed"


class AutoRenewOffReason(StrEnum):
    """Why billing itself turned auto-renewal off."""

    CARD_REMOVED = "card_removed"
    PERMISSION_REVOKED = "permission_revoked"  # billing.models.PERMISSION_REVOKED: YooKassa's reason


@dataclass(frozen=True, kw_only=True)
class EventPayload:
    """What one event type carries. Subclasses set `event_types` (most have one)."""

    event_types: ClassVar[tuple[BillingEventType, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        data = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if value is None and spec.default is None:
                continue
            data[spec.name] = _to_json_value(value)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        hints = _hints(cls)
        return cls(
            **{
                spec.name: _from_json_value(hints[spec.name], data[spec.name])
                for spec in dataclasses.fields(cls)
                if spec.name in data
            }
        )


@dataclass(frozen=True, kw_only=True)
class SubscriptionCreated(EventPayload):
    event_types = (BillingEventType.SUBSCRIPTION_CREATED,)
    plan: str  # the plan's code


@dataclass(frozen=True, kw_only=True)
class SubscriptionActivated(EventPayload):
    event_types = (BillingEventType.SUBSCRIPTION_ACTIVATED,)
    # None only in rows older than these fields: read the subscription's period then.
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class SubscriptionFailed(EventPayload):
    event_types = (BillingEventType.SUBSCRIPTION_FAILED,)
    reason: str = ""  # YooKassa's cancellation reason, "" when it gave none


@dataclass(frozen=True, kw_only=True)
class SubscriptionRenewalUpcoming(EventPayload):
    event_types = (BillingEventType.SUBSCRIPTION_RENEWAL_UPCOMING,)
    # None only in rows older than these fields: the period's end and the plan's price then.
    charge_on: datetime | None = None
    amount: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True, kw_only=True)
class SubscriptionRenewed(EventPayload):
    event_types = (BillingEventType.SUBSCRIPTION_RENEWED,)
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class SubscriptionRenewalFailed(EventPayload):
    event_types = (BillingEventType.SUBSCRIPTION_RENEWAL_FAILED,)
    attempt: int = 1  # 1 for the first failed charge of the period
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class SubscriptionPastDue(EventPayload):
    event_types = (BillingEventType.SUBSCRIPTION_PAST_DUE,)
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class SubscriptionAutoRenewChanged(EventPayload):
    event_types = (BillingEventType.SUBSCRIPTION_AUTO_RENEW_CHANGED,)
    enabled: bool
    reason: AutoRenewOffReason | None = None  # None when the viewer turned it on or off


@dataclass(frozen=True, kw_only=True)
class SubscriptionCancelScheduled(EventPayload):
    event_types = (BillingEventType.SUBSCRIPTION_CANCEL_SCHEDULED,)
    ends_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class SubscriptionEnded(EventPayload):
    event_types = (BillingEventType.SUBSCRIPTION_CANCELED, BillingEventType.SUBSCRIPTION_EXPIRED)
    reason: str = ""
    attempts: int | None = None  # the failed charges, when dunning ran out
    refunded: Decimal | None = None  # when a refund ended it


@dataclass(frozen=True, kw_only=True)
class PaymentCreated(EventPayload):
    event_types = (BillingEventType.PAYMENT_CREATED,)
    amount: Decimal
    currency: str
    attempt: int | None = None  # renewal charges: which try of the period


@dataclass(frozen=True, kw_only=True)
class PaymentSucceeded(EventPayload):
    event_types = (BillingEventType.PAYMENT_SUCCEEDED,)
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class PaymentCanceled(EventPayload):
    event_types = (BillingEventType.PAYMENT_CANCELED,)
    reason: str


@dataclass(frozen=True, kw_only=True)
class PaymentProviderConflict(EventPayload):
    event_types = (BillingEventType.PAYMENT_PROVIDER_CONFLICT,)
    provider_status: ProviderPaymentStatus


@dataclass(frozen=True, kw_only=True)
class RefundCreated(EventPayload):
    event_types = (BillingEventType.REFUND_CREATED,)
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class RefundSucceeded(EventPayload):
    event_types = (BillingEventType.REFUND_SUCCEEDED,)
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class RefundCanceled(EventPayload):
    event_types = (BillingEventType.REFUND_CANCELED,)
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RefundProviderConflict(EventPayload):
    event_types = (BillingEventType.REFUND_PROVIDER_CONFLICT,)


@dataclass(frozen=True, kw_only=True)
class ReconciliationFailed(EventPayload):
    event_types = (BillingEventType.RECONCILIATION_FAILED,)
    error: str  # repr of the exception, cut to 500 characters


@dataclass(frozen=True, kw_only=True)
class EntitlementsChanged(EventPayload):
    """The viewer's whole new entitlements (billing.entitlements.Entitlement.to_json() each) and
    their version: a receiver that holds a higher version drops this one."""

    event_types = (BillingEventType.ENTITLEMENTS_CHANGED,)
    version: int
    entitlements: list[dict[str, Any]]


PAYLOAD_CLASSES: dict[BillingEventType, type[EventPayload]] = {
    event_type: payload_class
    for payload_class in EventPayload.__subclasses__()
    for event_type in payload_class.event_types
}
assert set(PAYLOAD_CLASSES) == set(BillingEventType), "every event type has one payload class"


def event_type_check(event_type: BillingEventType, payload: EventPayload) -> None:
    """Refuse a payload recorded under a type it does not describe."""
    expected = PAYLOAD_CLASSES[BillingEventType(event_type)]
    if type(payload) is not expected:
        raise TypeError(f"A {event_type} event carries {expected.__name__}, not {type(payload).__name__}.")


def payload_parse(event_type: str, data: dict[str, Any]) -> EventPayload:
    """A stored row's JSON as its payload class."""
    return PAYLOAD_CLASSES[BillingEventType(event_type)].from_json(data)


def _to_json_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_json_value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(hint, types.UnionType):
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if hint is datetime:
        # Rows have never held "" here, but its old readers took it for "not given": so does this one.
        return datetime.fromisoformat(value) if value else None
    if hint is Decimal or (isinstance(hint, type) and issubclass(hint, Enum)):
        return hint(value)
    return value
