"""Data migrations, run on rows as they were before them."""

import importlib
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone

from billing.models import BillingEvent, Subscription, SubscriptionStatus

pytestmark = pytest.mark.django_db


def test_notices_recorded_before_the_amount_was_stored_get_the_amount_their_event_announced(plan):
    migration = importlib.import_module("billing.migrations.0005_renewal_notice_amount")
    end = timezone.now() + timedelta(days=2)
    noticed = Subscription.objects.create(
        viewer_id=uuid.uuid4(),
        plan=plan,
        status=SubscriptionStatus.ACTIVE,
        current_period_start=end - timedelta(days=30),
        current_period_end=end,
        renewal_notice_for=end,
    )
    never_noticed = Subscription.objects.create(viewer_id=uuid.uuid4(), plan=plan)
    BillingEvent.objects.create(
        type="subscription.renewal_upcoming",
        viewer_id=noticed.viewer_id,
        subscription=noticed,
        payload={"charge_on": end.isoformat(), "amount": "279.00", "currency": "RUB"},
    )

    migration.announced_amounts_from_the_outbox(apps, None)

    noticed.refresh_from_db()
    never_noticed.refresh_from_db()
    assert noticed.renewal_notice_amount == Decimal("279.00")
    assert never_noticed.renewal_notice_amount is None
