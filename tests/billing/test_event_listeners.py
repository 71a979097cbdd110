"""BILLING_EVENT_LISTENERS: consumers named in settings hear of each event once its transaction commits.

Billing imports none of them; a listener that fails (or cannot be imported) is logged and stops
neither billing's change nor the listeners after it.
"""

import logging
import uuid

import pytest
from django.db import transaction

from billing.event_listeners import check_event_listeners
from billing.events import BillingEventType, SubscriptionCreated
from billing.models import BillingEvent, Subscription
from billing.services.events import event_record
from config.settings import base as base_settings

pytestmark = pytest.mark.django_db(transaction=True)

CREATED = BillingEventType.SUBSCRIPTION_CREATED

HEARD: list[tuple[int, str, bool]] = []


def recording_listener(event: BillingEvent) -> None:
    HEARD.append((event.pk, event.type, BillingEvent.objects.filter(pk=event.pk).exists()))


def failing_listener(event: BillingEvent) -> None:
    raise RuntimeError("this listener is broken")


class ChangeFailed(Exception):
    pass


def _record_then_fail(subscription: Subscription) -> None:
    with transaction.atomic():
        event_record(subscription, CREATED, SubscriptionCreated(plan="basic-monthly"))
        raise ChangeFailed


@pytest.fixture(autouse=True)
def recorded(settings):
    HEARD.clear()
    settings.BILLING_EVENT_LISTENERS = [f"{__name__}.recording_listener"]
    yield HEARD
    HEARD.clear()


@pytest.fixture
def subscription(plan) -> Subscription:
    return Subscription.objects.create(viewer_id=uuid.uuid4(), plan=plan)


def test_listeners_hear_of_an_event_once_its_transaction_commits(subscription, recorded):
    with transaction.atomic():
        event = event_record(subscription, CREATED, SubscriptionCreated(plan="basic-monthly"))
        assert recorded == []

    assert recorded == [(event.pk, "subscription.created", True)]


def test_listeners_never_hear_of_an_event_that_was_rolled_back(subscription, recorded):
    with pytest.raises(ChangeFailed):
        _record_then_fail(subscription)

    assert recorded == []
    assert BillingEvent.objects.count() == 0


def test_a_failing_listener_is_logged_and_the_others_still_hear(subscription, recorded, settings, caplog):
    settings.BILLING_EVENT_LISTENERS = [f"{__name__}.failing_listener", f"{__name__}.recording_listener"]

    with caplog.at_level(logging.ERROR, logger="billing.event_listeners"), transaction.atomic():
        event = event_record(subscription, CREATED, SubscriptionCreated(plan="basic-monthly"))

    assert recorded == [(event.pk, "subscription.created", True)]
    assert BillingEvent.objects.filter(pk=event.pk).exists()
    [failure] = caplog.records
    assert f"{__name__}.failing_listener failed on event {event.pk} (subscription.created)" in failure.getMessage()


def test_a_listener_that_cannot_be_imported_is_logged_and_the_others_still_hear(
    subscription, recorded, settings, caplog
):
    settings.BILLING_EVENT_LISTENERS = ["billing.no_such_module.listener", f"{__name__}.recording_listener"]

    with caplog.at_level(logging.ERROR, logger="billing.event_listeners"):
        event = event_record(subscription, CREATED, SubscriptionCreated(plan="basic-monthly"))

    assert recorded == [(event.pk, "subscription.created", True)]
    [failure] = caplog.records
    assert "billing.no_such_module.listener failed" in failure.getMessage()


def test_the_system_check_refuses_listeners_that_cannot_be_imported_or_called(settings):
    settings.BILLING_EVENT_LISTENERS = [
        "billing.no_such_module.listener",
        "billing.models.CURRENCY_REGEX",
        f"{__name__}.recording_listener",
    ]

    errors = check_event_listeners()

    assert [error.id for error in errors] == ["billing.E001", "billing.E002"]
    assert "'billing.no_such_module.listener'" in errors[0].msg
    assert "'billing.models.CURRENCY_REGEX'" in errors[1].msg


def test_the_default_listeners_pass_the_system_check(settings):
    settings.BILLING_EVENT_LISTENERS = base_settings.BILLING_EVENT_LISTENERS

    assert check_event_listeners() == []
