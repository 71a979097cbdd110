"""Billing's retention: old outbox rows and idempotency keys go, in bounded batches; young ones,
and everything a money invariant needs, stay."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import retention
from billing.models import BillingEvent, ClientRequest, Payment, PaymentMethod, Refund, Subscription
from tests.helpers import start_checkout

pytestmark = pytest.mark.django_db


def _age(queryset, days: float) -> None:
    queryset.update(created_at=timezone.now() - timedelta(days=days))


def _money_rows() -> dict:
    return {
        model.__name__: sorted(str(pk) for pk in model.objects.values_list("pk", flat=True))
        for model in (Payment, Refund, Subscription, PaymentMethod)
    }


def _requests(viewer_id, count: int, *, days_old: float, prefix: str) -> list[ClientRequest]:
    requests = [
        ClientRequest.objects.create(
            viewer_id=viewer_id, key=f"{prefix}-{n}", operation="subscribe", fingerprint="f" * 64
        )
        for n in range(count)
    ]
    _age(ClientRequest.objects.filter(pk__in=[request.pk for request in requests]), days_old)
    return requests


def test_old_events_and_client_requests_go_young_ones_and_the_money_rows_stay(settings, active):
    # given a paid subscription (its events, its payment, card and subscription), aged past retention
    settings.RETENTION_EVENT_DAYS = 180
    settings.RETENTION_CLIENT_REQUEST_DAYS = 90
    events = list(BillingEvent.objects.order_by("id"))
    assert len(events) >= 4
    _age(BillingEvent.objects.filter(pk__in=[event.pk for event in events[:-1]]), 181)
    _age(BillingEvent.objects.filter(pk=events[-1].pk), 179)
    old_requests = _requests(active.viewer_id, 3, days_old=91, prefix="old")
    young_requests = _requests(active.viewer_id, 2, days_old=89, prefix="young")
    money_before = _money_rows()

    # when billing's purge runs
    purged = {
        "events": retention.event_purge_old(time_budget=10),
        "client_requests": retention.client_request_purge_old(time_budget=10),
    }

    # then only the old rows are gone; payments, refunds, subscriptions and cards are untouched
    assert purged == {"events": len(events) - 1, "client_requests": 3}
    assert list(BillingEvent.objects.values_list("pk", flat=True)) == [events[-1].pk]
    assert set(ClientRequest.objects.values_list("pk", flat=True)) == {request.pk for request in young_requests}
    assert not ClientRequest.objects.filter(pk__in=[request.pk for request in old_requests]).exists()
    assert _money_rows() == money_before
    assert all(money_before[name] for name in ("Payment", "Subscription", "PaymentMethod"))


def test_the_purge_deletes_in_batches_of_the_configured_size(settings):
    settings.RETENTION_BATCH_SIZE = 3
    settings.RETENTION_CLIENT_REQUEST_DAYS = 90
    _requests(uuid.uuid4(), 10, days_old=100, prefix="old")

    with CaptureQueriesContext(connection) as queries:
        deleted = retention.client_request_purge_old(time_budget=10)

    deletes = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("DELETE")]
    assert deleted == 10
    assert len(deletes) == 4
    assert not ClientRequest.objects.exists()


def test_a_run_stops_when_its_time_budget_is_spent_and_the_next_goes_on(settings):
    settings.RETENTION_BATCH_SIZE = 2
    _requests(uuid.uuid4(), 5, days_old=100, prefix="old")

    first = retention.client_request_purge_old(time_budget=0)
    second = retention.client_request_purge_old(time_budget=10)

    assert first == 2
    assert second == 3
    assert not ClientRequest.objects.exists()


def test_a_repeated_request_within_the_kept_age_still_returns_the_first_result(settings, viewer, plan, sandbox):
    settings.RETENTION_CLIENT_REQUEST_DAYS = 30
    first = start_checkout(viewer, plan, idempotency_key="pay-once")
    _age(ClientRequest.objects.all(), 29)

    retention.client_request_purge_old(time_budget=10)
    repeat = start_checkout(viewer, plan, idempotency_key="pay-once")

    assert repeat.payment.pk == first.payment.pk
    assert ClientRequest.objects.count() == 1
    assert Payment.objects.count() == 1
