from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from billing.events import BillingEventType, SubscriptionRenewalUpcoming
from billing.models import BillingEvent, Subscription, SubscriptionStatus
from billing.services.events import event_record
from mail import tasks
from mail.models import Email
from mail.receivers import DELIVERY_DEBOUNCE_KEY
from mail.services import email_create_for_events


@pytest.fixture(autouse=True)
def no_debounce_left_over():
    """A delivery enqueued by an earlier test must not hold back this test's."""
    cache.delete(DELIVERY_DEBOUNCE_KEY)


def deliver() -> list:
    """Run mail's scheduled task, as the worker does; the emails it sent."""
    already = len(mail.outbox)
    tasks.deliver_emails()
    return mail.outbox[already:]


def email_of(event_type: str) -> Email:
    """The email of the latest event of this type."""
    event = BillingEvent.objects.filter(type=event_type).latest("id")
    return Email.objects.get(event=event)


def ready_emails(plan, count: int = 1) -> list[Email]:
    """READY emails (renewal notices of as many viewers), as the dispatcher leaves them."""
    start = timezone.now()
    for n in range(count):
        subscription = Subscription.objects.create(
            viewer_id=f"6f1c1b5e-3f47-4d43-9b43-{n:012d}",
            viewer_email=f"viewer{n}@example.com",
            plan=plan,
            status=SubscriptionStatus.ACTIVE,
            current_period_start=start,
            current_period_end=start + timedelta(days=30),
        )
        event_record(
            subscription,
            BillingEventType.SUBSCRIPTION_RENEWAL_UPCOMING,
            SubscriptionRenewalUpcoming(
                charge_on=subscription.current_period_end, amount=Decimal("299.00"), currency="RUB"
            ),
        )
    email_create_for_events()
    return list(Email.objects.order_by("id"))
