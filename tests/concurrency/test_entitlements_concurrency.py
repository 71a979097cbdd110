"""Entitlements versions under real concurrency: a plan's save recomputing every viewer of it while
each of those viewers changes their own subscription. PostgreSQL only: the row locks are under test."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from billing import services
from billing.entitlements import entitlements_compute, entitlements_to_json
from billing.events import BillingEventType
from billing.models import BillingEvent, ViewerEntitlements
from graphql_api.auth import Viewer
from tests.helpers import subscribe_and_pay

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

VIEWERS = 8


def _in_parallel(calls: list) -> list:
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(timeout=10)
        try:
            return call()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.usefixtures("sandbox")
def test_a_plan_save_racing_its_viewers_changes_loses_no_version_and_deadlocks_nothing(plan):
    # given viewers with an active subscription to one plan, each at version 1
    viewers = [Viewer(id=uuid.uuid4(), email=f"v{n}@example.com") for n in range(VIEWERS)]
    subscriptions = {viewer.id: subscribe_and_pay(viewer, plan) for viewer in viewers}

    def save_plan():
        plan.features = ["hd", "offline"]
        plan.save()

    def switch_off(viewer):
        return lambda: services.subscription_set_auto_renew(
            viewer_id=viewer.id, subscription_id=subscriptions[viewer.id].pk, enabled=False
        )

    # when the plan gains a feature while every viewer switches auto-renewal off
    _in_parallel([save_plan, *(switch_off(viewer) for viewer in viewers)])

    # then each viewer has both changes, one event per version, in order: at version 3, or 2 when
    # the viewer's change read the plan already saved (then the plan's recomputation found nothing new)
    for viewer in viewers:
        row = ViewerEntitlements.objects.get(viewer_id=viewer.id)
        assert row.entitlements == entitlements_to_json(entitlements_compute(viewer_id=viewer.id))
        assert (row.entitlements[0]["features"], row.entitlements[0]["auto_renew"]) == (["hd", "offline"], False)
        versions = [
            event.payload["version"]
            for event in BillingEvent.objects.filter(
                viewer_id=viewer.id, type=BillingEventType.ENTITLEMENTS_CHANGED
            ).order_by("id")
        ]
        assert row.version in (2, 3)
        assert versions == list(range(1, row.version + 1))
