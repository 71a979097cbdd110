"""The outbox's contract: event types are one enum whose values never change, each with its payload
class, written as the same JSON the rows have always held and read back from it."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.events import (
    PAYLOAD_CLASSES,
    AutoRenewOffReason,
    BillingEventType,
    PaymentCreated,
    PaymentProviderConflict,
    RefundProviderConflict,
    SubscriptionActivated,
    SubscriptionAutoRenewChanged,
    SubscriptionCreated,
    SubscriptionEnded,
    SubscriptionRenewalUpcoming,
    payload_parse,
)
from billing.gateway.interface import ProviderPaymentStatus
from billing.models import BillingEvent, Subscription
from billing.services.events import event_record

MOMENT = datetime(2026, 12, 4, 17, 30, 5, 123456, tzinfo=UTC)

# What consumers outside this repo read in BillingEvent.type: a new member may be added, none renamed.
STORED_TYPES = {
    "subscription.created",
    "subscription.activated",
    "subscription.failed",
    "subscription.renewal_upcoming",
    "subscription.renewed",
    "subscription.renewal_failed",
    "subscription.past_due",
    "subscription.auto_renew_changed",
    "subscription.cancel_scheduled",
    "subscription.canceled",
    "subscription.expired",
    "payment.created",
    "payment.succeeded",
    "payment.canceled",
    "payment.provider_conflict",
    "refund.created",
    "refund.succeeded",
    "refund.canceled",
    "refund.provider_conflict",
    "reconciliation.failed",
    "entitlements.changed",
}


@pytest.fixture
def subscription(plan) -> Subscription:
    return Subscription.objects.create(viewer_id=uuid.uuid4(), plan=plan)


def test_the_stored_type_values_are_the_ones_rows_hold_and_each_has_a_payload_class():
    assert {member.value for member in BillingEventType} == STORED_TYPES
    assert set(PAYLOAD_CLASSES) == set(BillingEventType)


@pytest.mark.parametrize(
    ("payload", "stored"),
    [
        (SubscriptionCreated(plan="basic-monthly"), {"plan": "basic-monthly"}),
        (
            SubscriptionActivated(period_start=MOMENT, period_end=MOMENT),
            {"period_start": "2026-12-04T17:30:05.123456+00:00", "period_end": "2026-12-04T17:30:05.123456+00:00"},
        ),
        (
            PaymentCreated(amount=Decimal("299.00"), currency="RUB", attempt=2),
            {"amount": "299.00", "currency": "RUB", "attempt": 2},
        ),
        (PaymentCreated(amount=Decimal("299.00"), currency="RUB"), {"amount": "299.00", "currency": "RUB"}),
        (SubscriptionAutoRenewChanged(enabled=True), {"enabled": True}),
        (
            SubscriptionAutoRenewChanged(enabled=False, reason=AutoRenewOffReason.CARD_REMOVED),
            {"enabled": False, "reason": "card_removed"},
        ),
        (SubscriptionEnded(reason="renewal_failed", attempts=4), {"reason": "renewal_failed", "attempts": 4}),
        (
            SubscriptionEnded(reason="refunded", refunded=Decimal("150.50")),
            {"reason": "refunded", "refunded": "150.50"},
        ),
        (PaymentProviderConflict(provider_status=ProviderPaymentStatus.SUCCEEDED), {"provider_status": "succeeded"}),
        (RefundProviderConflict(), {}),
    ],
)
def test_a_payload_is_written_as_the_json_rows_hold_and_read_back_equal(payload, stored):
    # when
    written = payload.to_json()

    # then
    assert written == stored
    [event_type, *_] = type(payload).event_types
    assert payload_parse(event_type, written) == payload


def test_a_row_written_before_a_field_existed_reads_with_the_field_unset():
    notice = payload_parse(BillingEventType.SUBSCRIPTION_RENEWAL_UPCOMING, {"charge_on": MOMENT.isoformat()})

    assert notice == SubscriptionRenewalUpcoming(charge_on=MOMENT)
    assert notice.amount is None


@pytest.mark.django_db
def test_a_recorded_event_stores_the_enum_value_and_reads_back_typed(subscription):
    event = event_record(subscription, BillingEventType.SUBSCRIPTION_CREATED, SubscriptionCreated(plan="basic-monthly"))

    row = BillingEvent.objects.get(pk=event.pk)
    assert row.type == "subscription.created"
    assert row.payload == {"plan": "basic-monthly"}
    assert row.typed_payload() == SubscriptionCreated(plan="basic-monthly")


@pytest.mark.django_db
def test_a_string_type_or_another_types_payload_is_refused_and_nothing_is_recorded(subscription):
    # given
    created = SubscriptionCreated(plan="basic-monthly")

    # when / then
    with pytest.raises(TypeError, match="is a BillingEventType"):
        event_record(subscription, BillingEventType.SUBSCRIPTION_CREATED.value, created)
    with pytest.raises(TypeError, match="carries SubscriptionActivated, not SubscriptionCreated"):
        event_record(subscription, BillingEventType.SUBSCRIPTION_ACTIVATED, created)

    assert not BillingEvent.objects.exists()
