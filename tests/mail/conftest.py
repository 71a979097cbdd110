from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from billing import services
from billing.models import BillingEvent, Subscription, SubscriptionStatus
from billing.services.events import event_record
from mail import tasks
from mail.models import Email
from mail.receivers import DELIVERY_DEBOUNCE_KEY
from mail.services import email_create_for_events
from tests.helpers import pay_on_page, start_checkout

SUCCESS_CARD = "5555555555554444"
DECLINE_CARD = "5555555555554600"  # insufficient_funds


@pytest.fixture(autouse=True)
def no_debounce_left_over():
    """A delivery enqueued by an earlier test must not hold back this test's."""
    cache.delete(DELIVERY_DEBOUNCE_KEY)


def subscribe(viewer, plan, card=SUCCESS_CARD):
    """Pay for `plan` on the sandbox's page with `card`; the subscription as billing left it."""
    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, card)
    subscription = services.payment_refresh(provider_payment_id=payment.provider_payment_id).subscription
    subscription.refresh_from_db()
    return subscription


@pytest.fixture
def active(viewer, plan, sandbox):
    """Basic (299.00 RUB a month), paid with a saved card."""
    return subscribe(viewer, plan)


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
            "subscription.renewal_upcoming",
            charge_on=subscription.current_period_end.isoformat(),
            amount="299.00",
            currency="RUB",
        )
    email_create_for_events()
    return list(Email.objects.order_by("id"))
