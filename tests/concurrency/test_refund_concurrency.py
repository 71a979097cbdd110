"""Cancellation with a refund under real concurrency: threads posting over HTTP to the live server.

PostgreSQL only: the payment's row lock, the partial unique index "one refund in flight per
payment" and the check "refunded never above the amount" are what is under test.
"""

import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connections, transaction
from strawberry.relay import from_base64, to_base64

from billing import clock, services
from billing.errors import BillingError, NotRefundable, RefundInProgress
from billing.models import (
    BillingEvent,
    ClientRequest,
    Payment,
    PaymentKind,
    Refund,
    RefundInitiator,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
)
from billing.money import Money
from billing.services import CancelMode, cancellation, refund_quotes, renewals
from sandbox.emulator import RefundOutcome
from sandbox.faults import ApiEffect, ApiFault, NotificationEffect, NotificationFault
from tests.helpers import GraphQLClient, eventually
from webhooks.models import NotificationOutcome, YooKassaNotification

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SUCCESS_CARD = "5555555555554444"
TIMEOUT_MESSAGE = "YooKassa did not answer in time; the request may have been carried out."

CANCEL = """
mutation Cancel($input: CancelSubscriptionInput!) {
  cancelSubscription(input: $input) {
    subscription { id status }
    refund { id status amount { amount currency } }
    errors { code message field }
  }
}
"""


@pytest.fixture
def server(live_server, sandbox):
    """The live server, able to accept every simultaneous client of these tests (see the checkout's)."""
    live_server.thread.httpd.socket.listen(256)
    return live_server


def _in_parallel(count: int, call) -> list:
    """`call(n)` in `count` threads released together by a barrier; the answers in thread order."""
    barrier = threading.Barrier(count)

    def run(n: int):
        barrier.wait(timeout=10)
        try:
            return call(n)
        finally:
            connections.close_all()  # this thread's own database connection, if it opened one

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def _cancel_variables(subscription: Subscription, key: str | None) -> dict:
    subscription_id = to_base64("PlanSubscription", subscription.pk)
    return {"input": {"subscriptionId": subscription_id, "mode": "NOW_WITH_REFUND", "idempotencyKey": key}}


def _cancel_in_parallel(server, token: str, subscription: Subscription, key: str | None, count: int = 20) -> list:
    client = GraphQLClient(server.url)
    variables = _cancel_variables(subscription, key)
    return _in_parallel(count, lambda _: client.execute(CANCEL, variables, token=token))


def _shape(answer: dict) -> str:
    """One answer in a line: the refund it carries, or the codes of its errors."""
    if "errors" in answer:
        return "errors: " + "; ".join(error["message"] for error in answer["errors"])
    payload = answer["data"]["cancelSubscription"]
    if payload["errors"]:
        return " ".join(error["code"] for error in payload["errors"])
    if payload["refund"] is None:
        return f"no refund, {payload['subscription']['status']}"
    return f"refund {payload['refund']['id']} {payload['refund']['status']}, {payload['subscription']['status']}"


def _distribution(answers: list[dict]) -> collections.Counter:
    return collections.Counter(_shape(answer) for answer in answers)


def _node_id(global_id: str) -> str:
    return from_base64(global_id)[1]


def _sandbox_refunds(sandbox, subscription: Subscription) -> list[dict]:
    return sandbox.store.refunds_of_payment(subscription.payments.get().provider_payment_id)


# --- twenty cancellations at once ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "refund_status", "subscription_status"),
    [
        (RefundOutcome.SUCCEEDED, "SUCCEEDED", SubscriptionStatus.CANCELED),
        (RefundOutcome.PENDING, "PENDING", SubscriptionStatus.ACTIVE),
    ],
    ids=["refund succeeds", "refund left pending"],
)
def test_twenty_concurrent_cancellations_with_one_key_make_one_refund_and_get_the_same_answer(
    server, sandbox, token, active, outcome, refund_status, subscription_status
):
    sandbox.emulator.refund_outcome = outcome

    answers = _cancel_in_parallel(server, token, active, "cancel-once")

    refund = Refund.objects.get()
    active.refresh_from_db()
    expected = f"refund {to_base64('Refund', refund.pk)} {refund_status}, {subscription_status.name}"
    assert _distribution(answers) == {expected: 20}
    assert refund.status == refund_status.lower()
    assert refund.money == Money.of("299.00", "RUB")
    assert active.status == subscription_status
    assert len(_sandbox_refunds(sandbox, active)) == 1
    assert sandbox.store.count_refunds() == 1
    assert ClientRequest.objects.get().refund_id == refund.pk


def test_twenty_concurrent_cancellations_without_a_key_make_one_refund(server, sandbox, token, active):
    answers = _cancel_in_parallel(server, token, active, None)

    refund = Refund.objects.get()
    active.refresh_from_db()
    shapes = _distribution(answers)
    success = f"refund {to_base64('Refund', refund.pk)} SUCCEEDED, CANCELED"
    # Whoever finds the refund still CREATING drives it again under its own Idempotence-Key and gets
    # it back; whoever finds it pending is told it is under way; whoever comes after it succeeded is
    # told the subscription has ended. How many of each depends on timing; the refund is one.
    assert set(shapes) <= {success, "REFUND_IN_PROGRESS", "ALREADY_CANCELED"}, shapes
    assert shapes[success] >= 1, shapes
    assert shapes[success] + shapes["REFUND_IN_PROGRESS"] + shapes["ALREADY_CANCELED"] == 20, shapes
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.money == Money.of("299.00", "RUB")
    assert refund.payment.refunded_amount == Decimal("299.00")
    assert active.status == SubscriptionStatus.CANCELED
    assert len(_sandbox_refunds(sandbox, active)) == 1
    assert sandbox.store.count_refunds() == 1


def test_twenty_concurrent_cancellations_without_a_key_while_the_refund_is_pending_make_one_refund(
    server, sandbox, token, active
):
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING

    answers = _cancel_in_parallel(server, token, active, None)

    refund = Refund.objects.get()
    active.refresh_from_db()
    shapes = _distribution(answers)
    success = f"refund {to_base64('Refund', refund.pk)} PENDING, ACTIVE"
    assert set(shapes) <= {success, "REFUND_IN_PROGRESS"}, shapes
    assert shapes[success] >= 1, shapes
    assert shapes[success] + shapes["REFUND_IN_PROGRESS"] == 20, shapes
    assert refund.status == RefundStatus.PENDING
    assert active.status == SubscriptionStatus.ACTIVE
    assert [provider_refund["status"] for provider_refund in _sandbox_refunds(sandbox, active)] == ["pending"]
    assert sandbox.store.count_refunds() == 1


def test_twenty_concurrent_cancellations_at_the_period_end_with_one_key_get_the_same_answer(
    server, sandbox, token, active
):
    client = GraphQLClient(server.url)
    variables = _cancel_variables(active, "cancel-later-once")
    variables["input"]["mode"] = "AT_PERIOD_END"

    answers = _in_parallel(20, lambda _: client.execute(CANCEL, variables, token=token))

    active.refresh_from_db()
    expected = {
        "subscription": {"id": to_base64("PlanSubscription", active.pk), "status": "ACTIVE"},
        "refund": None,
        "errors": [],
    }
    assert answers == [{"data": {"cancelSubscription": expected}}] * 20, _distribution(answers)
    assert active.cancel_at_period_end is True
    assert active.auto_renew is False
    assert ClientRequest.objects.get().subscription_id == active.pk
    assert sandbox.store.count_refunds() == 0


@pytest.mark.parametrize("mode", list(CancelMode), ids=lambda mode: mode.value)
def test_a_repeat_that_read_no_earlier_request_before_the_first_committed_still_gets_the_first_result(
    sandbox, viewer, active, monkeypatch, mode
):
    """The narrow window of the tests above, made certain: the repeat has found no earlier request
    under its key (or not looked yet), then the first request under the key runs to its end in
    another session just before the repeat takes its locks, then the repeat goes on."""
    real_viewers = cancellation._viewers
    first = []

    def first_runs_to_its_end_before_the_repeat_locks(*args):
        if not first:
            first.append(None)
            with ThreadPoolExecutor(max_workers=1) as pool:
                first[0] = pool.submit(_cancel_in_a_thread, viewer, active, mode, "cancel-raced").result(timeout=10)
        return real_viewers(*args)

    monkeypatch.setattr(cancellation, "_viewers", first_runs_to_its_end_before_the_repeat_locks)

    repeat = services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=mode, idempotency_key="cancel-raced"
    )

    assert repeat.subscription.pk == first[0].subscription.pk
    assert repeat.subscription.status == first[0].subscription.status
    assert getattr(repeat.refund, "pk", None) == getattr(first[0].refund, "pk", None)
    assert sandbox.store.count_refunds() == (1 if mode is CancelMode.NOW_WITH_REFUND else 0)


def _cancel_in_a_thread(viewer, subscription: Subscription, mode: CancelMode, key: str):
    try:
        return services.subscription_cancel(
            viewer_id=viewer.id, subscription_id=subscription.pk, mode=mode, idempotency_key=key
        )
    finally:
        connections.close_all()


# --- a renewal between picking the period's payment and locking it --------------------------------


@pytest.mark.parametrize("initiator", ["viewer", "operator"])
def test_a_renewal_committed_between_picking_the_payment_and_locking_it_is_what_gets_refunded(
    sandbox, viewer, active, plan, admin_user, monkeypatch, initiator
):
    """The renewal, charged in its lead time, commits in another session right after the
    cancellation picked the period's payment and before it takes the payment's lock: the pick is
    stale (its period is used up) and the refund must go against the renewal, for the renewal's
    period."""
    plan.price = Decimal("349.00")
    plan.save()
    real_period_payment = refund_quotes.period_payment
    picks = []

    def a_renewal_commits_right_after_the_first_pick(subscription):
        picked = real_period_payment(subscription)
        if not picks:
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(_renew_in_a_thread, clock.domain_now()).result(timeout=10)
        picks.append(picked)
        return picked

    monkeypatch.setattr(refund_quotes, "period_payment", a_renewal_commits_right_after_the_first_pick)
    old_end = active.current_period_end

    with clock.moved_to(old_end - timedelta(hours=2)):
        if initiator == "viewer":
            result = services.subscription_cancel(
                viewer_id=viewer.id, subscription_id=active.pk, mode=CancelMode.NOW_WITH_REFUND, idempotency_key=None
            )
        else:
            result = services.subscription_cancel_with_refund_by_operator(
                subscription_id=active.pk, operator=admin_user, reason="Asked by phone"
            )

    initial = Payment.objects.get(kind=PaymentKind.INITIAL)
    renewal = Payment.objects.get(kind=PaymentKind.RENEWAL)
    assert picks[0] == initial
    assert renewal.amount == Decimal("349.00")
    assert result.refund.payment == renewal
    assert result.refund.money == Money.of("349.00", "RUB")  # the renewal's period has not begun: all of it
    assert result.subscription.status == SubscriptionStatus.CANCELED
    assert result.subscription.current_period_start == old_end
    assert initial.refunded_amount == Decimal("0.00")
    assert initial.refunds.count() == 0
    assert sandbox.store.refunds_of_payment(initial.provider_payment_id) == []
    assert len(sandbox.store.refunds_of_payment(renewal.provider_payment_id)) == 1


def _renew_in_a_thread(as_of):
    """Billing's moved clock stays in the caller's context: the moment is handed over."""
    try:
        with clock.moved_to(as_of):
            report = renewals.subscription_renew_due()
        assert report.succeeded == 1, report
    finally:
        connections.close_all()


# --- YooKassa fails during the refund ---------------------------------------------------------------


def test_a_500_after_yookassa_refunded_then_a_retry_with_the_same_key_makes_one_refund(server, sandbox, token, active):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="refunds.create", applied=True))
    client = GraphQLClient(server.url)
    variables = _cancel_variables(active, "cancel-after-500")
    first = client.execute(CANCEL, variables, token=token)["data"]["cancelSubscription"]

    retried = client.execute(CANCEL, variables, token=token)["data"]["cancelSubscription"]

    refund = Refund.objects.get()
    active.refresh_from_db()
    refund_id = to_base64("Refund", refund.pk)
    subscription_id = to_base64("PlanSubscription", active.pk)
    assert first == {
        "subscription": {"id": subscription_id, "status": "ACTIVE"},
        "refund": {"id": refund_id, "status": "CREATING", "amount": {"amount": "299.00", "currency": "RUB"}},
        "errors": [
            {
                "code": "PROVIDER_OUTCOME_UNKNOWN",
                "message": "YooKassa answered 500: Internal server error",
                "field": None,
            }
        ],
    }
    assert retried == {
        "subscription": {"id": subscription_id, "status": "CANCELED"},
        "refund": {"id": refund_id, "status": "SUCCEEDED", "amount": {"amount": "299.00", "currency": "RUB"}},
        "errors": [],
    }
    [provider_refund] = _sandbox_refunds(sandbox, active)
    assert refund.provider_refund_id == provider_refund["id"]
    assert active.status == SubscriptionStatus.CANCELED
    assert sandbox.store.count_refunds() == 1


def test_a_timeout_then_a_retry_without_a_key_makes_one_refund(server, sandbox, settings, token, active):
    settings.YOOKASSA_READ_TIMEOUT = 0.5
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="refunds.create", delay=1.5))
    client = GraphQLClient(server.url)
    variables = _cancel_variables(active, None)
    timed_out = client.execute(CANCEL, variables, token=token)["data"]["cancelSubscription"]

    retried = client.execute(CANCEL, variables, token=token)["data"]["cancelSubscription"]

    refund = Refund.objects.get()
    active.refresh_from_db()
    refund_id = to_base64("Refund", refund.pk)
    subscription_id = to_base64("PlanSubscription", active.pk)
    assert timed_out == {
        "subscription": {"id": subscription_id, "status": "ACTIVE"},
        "refund": {"id": refund_id, "status": "CREATING", "amount": {"amount": "299.00", "currency": "RUB"}},
        "errors": [{"code": "PROVIDER_OUTCOME_UNKNOWN", "message": TIMEOUT_MESSAGE, "field": None}],
    }
    assert retried == {
        "subscription": {"id": subscription_id, "status": "CANCELED"},
        "refund": {"id": refund_id, "status": "SUCCEEDED", "amount": {"amount": "299.00", "currency": "RUB"}},
        "errors": [],
    }
    assert active.status == SubscriptionStatus.CANCELED
    assert len(_sandbox_refunds(sandbox, active)) == 1
    assert sandbox.store.count_refunds() == 1


def test_a_timeout_and_no_retry_the_refund_notification_completes_the_refund(server, sandbox, settings, token, active):
    settings.YOOKASSA_READ_TIMEOUT = 0.5
    sandbox.config.notification_url = server.url + "/webhooks/yookassa/"
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="refunds.create", delay=1.5))
    # The notification comes after the viewer's answer, so that answer is the timeout's for sure.
    sandbox.faults.add(NotificationFault(NotificationEffect.DELAY, event="refund.succeeded", delay=1.0))
    client = GraphQLClient(server.url)

    timed_out = client.execute(CANCEL, _cancel_variables(active, None), token=token)["data"]["cancelSubscription"]

    refund = Refund.objects.get(pk=_node_id(timed_out["refund"]["id"]))
    creating = (refund.status, refund.provider_refund_id)
    # The webhook commits the refund (and the subscription's end) before it records its own outcome
    # on the notification row: wait for that record, the webhook's last write, not the first one.
    eventually(lambda: _answered_notifications("refund.succeeded"), timeout=5.0)
    refund.refresh_from_db()
    [provider_refund] = _sandbox_refunds(sandbox, active)
    notification = YooKassaNotification.objects.get(event="refund.succeeded")
    assert Subscription.objects.get(pk=active.pk).status == SubscriptionStatus.CANCELED
    assert timed_out["errors"] == [{"code": "PROVIDER_OUTCOME_UNKNOWN", "message": TIMEOUT_MESSAGE, "field": None}]
    assert timed_out["refund"]["status"] == "CREATING"
    assert timed_out["subscription"]["status"] == "ACTIVE"
    assert creating == (RefundStatus.CREATING, None)
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.provider_refund_id == provider_refund["id"]
    assert refund.payment.refunded_amount == Decimal("299.00")
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.object_id == provider_refund["id"]
    assert sandbox.store.count_refunds() == 1


def _answered_notifications(event: str) -> list[YooKassaNotification]:
    """Notifications of `event` the webhook has finished with (the event is stored with the outcome)."""
    return list(YooKassaNotification.objects.filter(event=event).exclude(outcome=NotificationOutcome.RECEIVED))


def test_the_refund_notification_racing_the_mutations_own_answer_applies_the_refund_once(
    server, sandbox, token, active
):
    sandbox.config.notification_url = server.url + "/webhooks/yookassa/"
    client = GraphQLClient(server.url)

    canceled = client.execute(CANCEL, _cancel_variables(active, None), token=token)["data"]["cancelSubscription"]

    notification = eventually(
        lambda: YooKassaNotification.objects.filter(event="refund.succeeded").exclude(outcome="received").first()
    )
    refund = Refund.objects.select_related("payment").get()
    assert canceled["errors"] == []
    assert canceled["refund"]["status"] == "SUCCEEDED"
    assert canceled["subscription"]["status"] == "CANCELED"
    assert notification.outcome in (NotificationOutcome.PROCESSED, NotificationOutcome.DUPLICATE)
    assert refund.payment.refunded_amount == Decimal("299.00")
    assert BillingEvent.objects.filter(type="refund.succeeded").count() == 1
    assert BillingEvent.objects.filter(type="subscription.canceled").count() == 1
    assert sandbox.store.count_refunds() == 1


# --- refunds never exceed the payment --------------------------------------------------------------


def test_concurrent_operator_refunds_never_exceed_the_payment(sandbox, active, admin_user):
    payment = active.payments.get()
    hundred = Money.of("100.00", "RUB")
    rounds = []

    def refund_a_hundred(_):
        try:
            refund = services.payment_refund_by_operator(
                payment_id=payment.pk, operator=admin_user, reason="Goodwill", amount=hundred
            )
        except RefundInProgress:
            return "in progress"
        except NotRefundable:
            return "not refundable"
        except IntegrityError:
            return "integrity error"
        except BillingError as problem:  # the refund was committed, then YooKassa failed or declined it
            return f"{problem.result['refund'].status} {problem!r}"
        return f"{refund.status} None"

    while not rounds or set(rounds[-1]) != {"not refundable"}:
        assert len(rounds) < 10, rounds
        rounds.append(collections.Counter(_in_parallel(10, refund_a_hundred)))

    payment.refresh_from_db()
    active.refresh_from_db()
    refunds = list(payment.refunds.all())
    answers = sum(rounds, collections.Counter())
    provider_refunds = sandbox.store.refunds_of_payment(payment.provider_payment_id)
    assert answers["succeeded None"] == 2, rounds
    assert answers["integrity error"] == 0, rounds
    assert set(answers) <= {"succeeded None", "in progress", "not refundable"}, rounds
    assert [refund.status for refund in refunds] == [RefundStatus.SUCCEEDED] * 2
    assert sum(refund.amount for refund in refunds) == Decimal("200.00")
    assert payment.refunded_amount == Decimal("200.00")
    assert sorted(provider_refund["status"] for provider_refund in provider_refunds) == ["succeeded"] * 2
    assert sum(Decimal(provider_refund["amount"]["value"]) for provider_refund in provider_refunds) == Decimal("200.00")
    assert active.status == SubscriptionStatus.ACTIVE


def test_the_database_refuses_a_second_refund_in_flight_for_a_payment(active, admin_user):
    payment = active.payments.get()
    Refund.objects.create(
        payment=payment,
        amount=Decimal("100.00"),
        currency="RUB",
        idempotence_key="refund-first",
        reason="First",
        initiator=RefundInitiator.OPERATOR,
        operator=admin_user,
    )

    with pytest.raises(IntegrityError, match="refund_one_in_flight_per_payment"), transaction.atomic():
        Refund.objects.create(
            payment=payment,
            amount=Decimal("50.00"),
            currency="RUB",
            idempotence_key="refund-second",
            reason="Second",
            initiator=RefundInitiator.OPERATOR,
            operator=admin_user,
        )

    assert Refund.objects.count() == 1


def test_the_database_refuses_refunds_above_the_payment(active):
    payment = active.payments.get()

    with pytest.raises(IntegrityError, match="payment_refunds_never_exceed_amount"), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(refunded_amount=payment.amount + Decimal("0.01"))

    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("0.00")
