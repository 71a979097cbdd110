"""Entitlements: what a viewer may watch, and a version that moves exactly when that changes."""

import importlib
import uuid
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError

from billing import services
from billing.entitlements import (
    entitlements_compute,
    entitlements_compute_many,
    entitlements_get,
    entitlements_get_many,
    entitlements_to_json,
)
from billing.events import BillingEventType, PaymentCreated
from billing.models import BillingEvent, Subscription, SubscriptionStatus, ViewerEntitlements
from billing.services import lifecycle, renewals
from billing.services.entitlements import entitlements_sync
from billing.services.events import event_record
from graphql_api.auth import Viewer
from tests.billing.renewal_steps import at, cancel_with_a_refund_left_pending, janitor_in
from tests.helpers import DECLINE_CARD, subscribe_and_pay

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


def changes(viewer) -> list[dict]:
    """The entitlements.changed events of the viewer, as their payloads, oldest first."""
    return list(
        BillingEvent.objects.filter(viewer_id=viewer.id, type=BillingEventType.ENTITLEMENTS_CHANGED)
        .order_by("id")
        .values_list("payload", flat=True)
    )


def assert_snapshot_current(viewer) -> ViewerEntitlements:
    row = ViewerEntitlements.objects.get(viewer_id=viewer.id)
    assert row.entitlements == entitlements_to_json(entitlements_compute(viewer_id=viewer.id))
    assert row.version == len(changes(viewer))
    assert changes(viewer)[-1] == {"version": row.version, "entitlements": row.entitlements}
    return row


def test_paying_gives_version_1_with_the_plans_entitlements(viewer, plans):
    # given the Premium plan, with its features
    plan = plans["premium-monthly"]

    # when the viewer pays for it
    subscription = subscribe_and_pay(viewer, plan)

    # then they are entitled to it, at version 1, and the outbox says so
    row = assert_snapshot_current(viewer)
    assert row.version == 1
    assert row.entitlements == [
        {
            "plan": "premium-monthly",
            "status": "active",
            "valid_until": subscription.current_period_end.isoformat(),
            "auto_renew": True,
            "features": ["hd", "4k", "offline"],
        }
    ]
    event = BillingEvent.objects.get(type=BillingEventType.ENTITLEMENTS_CHANGED)
    assert event.subscription is None
    assert event.viewer_id == viewer.id


def test_a_renewal_moves_valid_until_and_bumps_the_version(viewer, active, plan):
    # given an active subscription at version 1
    old_end = active.current_period_end

    # when it renews
    with at(old_end - timedelta(hours=2)):
        renewals.subscription_renew_due()

    # then the version is 2 with the new period's end
    row = assert_snapshot_current(viewer)
    assert row.version == 2
    assert row.entitlements[0]["valid_until"] == plan.period.end_after(old_end).isoformat()


def test_past_due_keeps_access_through_the_grace_then_expiry_empties_it(viewer, active, sandbox, settings):
    # given a card that is declined
    sandbox.emulator.set_payment_method_decline(active.payment_method.provider_method_id, "insufficient_funds")

    # when the renewal fails
    with at(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()

    # then the viewer is still entitled, past due, until the grace's end
    row = assert_snapshot_current(viewer)
    assert row.version == 2
    assert row.entitlements[0]["status"] == "past_due"
    grace_end = active.current_period_end + timedelta(days=settings.DUNNING_GRACE_DAYS)
    assert row.entitlements[0]["valid_until"] == grace_end.isoformat()

    # when every retry fails too
    active.refresh_from_db()
    for days in (1, 3, 5):
        with at(active.past_due_since + timedelta(days=days, minutes=1)):
            renewals.subscription_retry_past_due()

    # then the subscription expired and the entitlements are empty; retries that changed nothing
    # the viewer may watch bumped nothing
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.EXPIRED
    row = assert_snapshot_current(viewer)
    assert row.entitlements == []
    assert row.version == 3


def test_cancel_at_period_end_turns_auto_renew_off_then_expiry_ends_it(viewer, active):
    # when the viewer cancels at the period's end
    services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=services.CancelMode.AT_PERIOD_END, idempotency_key=None
    )

    # then they keep access, no longer renewing
    row = assert_snapshot_current(viewer)
    assert (row.version, row.entitlements[0]["auto_renew"], row.entitlements[0]["status"]) == (2, False, "active")

    # when the period is over
    with at(active.current_period_end + timedelta(seconds=1)):
        lifecycle.subscription_expire_due()

    # then nothing is left
    row = assert_snapshot_current(viewer)
    assert (row.version, row.entitlements) == (3, [])


def test_switching_auto_renew_off_and_on_bumps_each_time(viewer, active):
    for enabled, version in ((False, 2), (True, 3)):
        services.subscription_set_auto_renew(viewer_id=viewer.id, subscription_id=active.pk, enabled=enabled)

        row = assert_snapshot_current(viewer)
        assert (row.version, row.entitlements[0]["auto_renew"]) == (version, enabled)


def test_a_refund_that_cancels_empties_the_entitlements(viewer, active):
    # when the viewer cancels now with a refund
    result = services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=services.CancelMode.NOW_WITH_REFUND, idempotency_key=None
    )

    # then the refund ended the subscription and the entitlements with it
    assert result.refund.status == "succeeded"
    row = assert_snapshot_current(viewer)
    assert (row.version, row.entitlements) == (2, [])


def test_a_pending_refund_changes_nothing_until_it_succeeds(viewer, active, sandbox):
    # given a cancellation whose refund YooKassa keeps pending
    refund = cancel_with_a_refund_left_pending(viewer, active, sandbox)
    assert assert_snapshot_current(viewer).version == 1

    # when YooKassa settles it and the janitor learns so
    sandbox.emulator.settle_refund(refund.provider_refund_id, "succeeded")
    janitor_in()

    # then the entitlements are gone
    row = assert_snapshot_current(viewer)
    assert (row.version, row.entitlements) == (2, [])


def test_an_operators_cancellation_with_refund_empties_them(viewer, active, admin_user):
    # when an operator cancels with the quoted refund
    services.subscription_cancel_with_refund_by_operator(
        subscription_id=active.pk, operator=admin_user, reason="support ticket 1"
    )

    # then the viewer's entitlements are empty at the next version
    row = assert_snapshot_current(viewer)
    assert (row.version, row.entitlements) == (2, [])


def test_removing_the_card_turns_auto_renew_off_in_the_entitlements(viewer, active):
    services.payment_method_remove(viewer_id=viewer.id, payment_method_id=active.payment_method_id)

    row = assert_snapshot_current(viewer)
    assert (row.version, row.entitlements[0]["auto_renew"]) == (2, False)


def test_an_event_that_alters_nothing_bumps_nothing(viewer, active):
    # when an event that does not alter access is recorded, and a sync finds nothing new
    event_record(active, BillingEventType.PAYMENT_CREATED, PaymentCreated(amount=active.plan.price, currency="RUB"))
    entitlements_sync(viewer_id=viewer.id)

    # then the version stays
    row = assert_snapshot_current(viewer)
    assert row.version == 1


def test_a_failed_first_payment_never_entitles(viewer, plan):
    subscribe_and_pay(viewer, plan, card=DECLINE_CARD)

    assert entitlements_get(viewer_id=viewer.id).version == 0
    assert changes(viewer) == []


def test_an_unknown_viewer_has_nothing_at_version_0():
    unknown = uuid.uuid4()

    got = entitlements_get(viewer_id=unknown)

    assert (got.version, got.entitlements) == (0, ())


def test_the_selector_costs_one_query_for_one_viewer_or_a_thousand(viewer, active, django_assert_num_queries):
    # given one paying viewer among a thousand asked for
    others = [uuid.uuid4() for _ in range(999)]

    # when / then: one query each way, whatever the number
    with django_assert_num_queries(1):
        one = entitlements_compute_many(viewer_ids=[viewer.id])
    with django_assert_num_queries(1):
        many = entitlements_compute_many(viewer_ids=[viewer.id, *others])
    with django_assert_num_queries(1):
        stored_one = entitlements_get_many(viewer_ids=[viewer.id])
    with django_assert_num_queries(1):
        stored_many = entitlements_get_many(viewer_ids=[viewer.id, *others])

    assert (
        one[viewer.id] == many[viewer.id] == stored_one[viewer.id].entitlements == stored_many[viewer.id].entitlements
    )
    assert len(many) == len(stored_many) == 1000
    assert all(many[other] == () for other in others)


def test_a_plans_features_are_short_slugs_and_few(plan):
    for features in (["hd", "4k"], []):
        plan.features = features
        plan.full_clean()
    for features in ("hd", ["HD"], ["hd", "hd"], [1], ["x" * 17], [f"f{i}" for i in range(9)]):
        plan.features = features
        with pytest.raises(ValidationError):
            plan.full_clean()


def test_the_migration_records_the_entitlements_of_viewers_with_access(viewer, active, plan):
    # given a viewer with access and no recorded entitlements (as before the migration), and one without
    ViewerEntitlements.objects.all().delete()
    lapsed = Viewer(id=uuid.uuid4(), email="lapsed@example.com")
    Subscription.objects.create(viewer_id=lapsed.id, plan=plan, status=SubscriptionStatus.FAILED)
    migration = importlib.import_module("billing.migrations.0007_viewer_entitlements")

    # when the migration runs
    migration.record_current_entitlements(apps, None)

    # then the viewer with access starts at version 1 with what the selector computes
    row = ViewerEntitlements.objects.get(viewer_id=viewer.id)
    assert row.version == 1
    assert row.entitlements == entitlements_to_json(entitlements_compute(viewer_id=viewer.id))
    assert not ViewerEntitlements.objects.filter(viewer_id=lapsed.id).exists()


def test_editing_a_plans_features_bumps_its_viewers_and_nobody_else(viewer, active, plans):
    # given a viewer on Basic and another on Premium
    other = Viewer(id=uuid.uuid4(), email="other@example.com")
    subscribe_and_pay(other, plans["premium-monthly"])
    basic = plans["basic-monthly"]

    # when Basic gains a feature, and is saved again unchanged
    basic.features = ["hd", "offline"]
    basic.save()
    basic.save()

    # then Basic's viewer is at version 2 with it, once; Premium's is untouched
    row = assert_snapshot_current(viewer)
    assert (row.version, row.entitlements[0]["features"]) == (2, ["hd", "offline"])
    assert assert_snapshot_current(other).version == 1
