"""Notifications to the shop: YooKassa's shape, redelivery until 200, and their fault switches."""

import time

import pytest
from yookassa import Payment, Refund

from sandbox.config import YOOKASSA_RETRY_SCHEDULE, SandboxConfig
from sandbox.faults import Faults, NotificationEffect, NotificationFault
from sandbox.notifier import Notifier
from sandbox.store import Store
from tests.helpers import eventually, pay_on_page

pytestmark = pytest.mark.usefixtures("sdk")


def _payment(*, capture: bool = True, key: str = "key-n"):
    return Payment.create(
        {
            "amount": {"value": "299.00", "currency": "RUB"},
            "confirmation": {"type": "redirect", "return_url": "https://cinema.example/return"},
            "capture": capture,
        },
        key,
    )


def test_payment_succeeded_is_notified_with_the_object(sandbox, receiver):
    payment = _payment()

    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    [notification] = receiver.wait_for(1)
    assert notification["type"] == "notification"
    assert notification["event"] == "payment.succeeded"
    assert notification["object"]["id"] == payment.id
    assert notification["object"]["status"] == "succeeded"


def test_decline_is_notified_as_canceled(sandbox, receiver):
    payment = _payment()

    pay_on_page(payment.confirmation.confirmation_url, "5555555555554600")

    [notification] = receiver.wait_for(1)
    assert notification["event"] == "payment.canceled"
    assert notification["object"]["cancellation_details"]["reason"] == "insufficient_funds"


def test_two_step_payment_notifies_waiting_then_succeeded(sandbox, receiver):
    payment = _payment(capture=False)
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")
    receiver.wait_for(1)

    Payment.capture(payment.id, None, "key-capture")

    receiver.wait_for(2)
    assert receiver.events() == [
        ("payment.waiting_for_capture", "waiting_for_capture"),
        ("payment.succeeded", "succeeded"),
    ]


def test_refund_succeeded_is_notified(sandbox, receiver):
    payment = _payment()
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    Refund.create({"payment_id": payment.id, "amount": {"value": "10.00", "currency": "RUB"}}, "key-refund")

    receiver.wait_for(2)
    assert receiver.events()[1] == ("refund.succeeded", "succeeded")


def test_non_200_answers_are_retried_until_200(sandbox, receiver):
    receiver.answers = [500, 404, 503]
    payment = _payment()

    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    received = receiver.wait_for(4)
    assert len(received) == 4
    assert {body["object"]["id"] for body in received} == {payment.id}
    [notification] = eventually(lambda: sandbox.store.notifications(state="delivered"))
    assert notification.attempts == 4


@pytest.mark.parametrize("redirect", [302, 307, 308])
def test_a_redirect_is_not_a_delivery(sandbox, receiver, redirect):
    receiver.answers = [redirect]
    payment = _payment()

    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    received = receiver.wait_for(2)
    [notification] = eventually(lambda: sandbox.store.notifications(state="delivered"))
    assert notification.attempts == 2
    assert [body["object"]["id"] for body in received] == [payment.id, payment.id]


def test_retries_stop_after_the_schedule(sandbox, receiver, monkeypatch):
    monkeypatch.setattr(sandbox.config, "notification_retry_schedule", (10.0, 42.0, 84.0))
    attempts = 1 + len(sandbox.config.notification_retry_schedule)
    receiver.answers = [500] * (attempts + 5)
    payment = _payment()

    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    receiver.wait_for(attempts)
    [notification] = eventually(lambda: sandbox.store.notifications(state="failed"))
    assert notification.attempts == attempts
    assert len(receiver.received) == attempts


def test_redeliveries_are_due_at_yookassas_offsets_from_the_event_whenever_the_last_attempt_was(receiver):
    # A notifier of its own, on a clock the test moves: the attempts run late, as a busy loop or a
    # slow shop would make them, and the series still ends within 24 hours of the event.
    clock = [1_000.0]
    store = Store()
    config = SandboxConfig(notification_url=receiver.url, notification_time_scale=1.0)
    notifier = Notifier(config, store, Faults(), now=lambda: clock[0])
    receiver.answers = [500] * 8
    notifier.emit("payment.succeeded", {"id": "2d9f5b3a-000f-5000-8000-1c2b3a4d5e6f", "status": "succeeded"})

    due = []
    for attempt in range(len(YOOKASSA_RETRY_SCHEDULE)):
        notifier.deliver_due()
        [notification] = store.notifications()
        due.append(notification.due_at - 1_000.0)
        clock[0] = notification.due_at + 30.0 * (attempt + 1)  # the next attempt runs later and later
    notifier.deliver_due()

    assert due == list(YOOKASSA_RETRY_SCHEDULE)
    assert due[-1] < 24 * 3600
    [failed] = store.notifications(state="failed")
    assert failed.attempts == 1 + len(YOOKASSA_RETRY_SCHEDULE)
    assert len(receiver.received) == failed.attempts


def test_duplicate_fault_delivers_copies(sandbox, receiver):
    sandbox.faults.add(
        NotificationFault(NotificationEffect.DUPLICATE, event="payment.succeeded", copies=3, parallel=True)
    )
    payment = _payment()

    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    received = receiver.wait_for(3)
    assert [body["object"]["id"] for body in received] == [payment.id] * 3


def test_lose_fault_never_delivers(sandbox, receiver):
    sandbox.faults.add(NotificationFault(NotificationEffect.LOSE, event="payment.succeeded"))
    payment = _payment()

    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    time.sleep(0.3)
    assert receiver.received == []
    assert Payment.find_one(payment.id).status == "succeeded"


def test_delay_fault_lets_a_later_event_overtake(sandbox, receiver):
    sandbox.faults.add(NotificationFault(NotificationEffect.DELAY, event="payment.waiting_for_capture", delay=0.5))
    payment = _payment(capture=False)
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    Payment.capture(payment.id, None, "key-capture")

    receiver.wait_for(2)
    assert [event for event, _ in receiver.events()] == ["payment.succeeded", "payment.waiting_for_capture"]


def test_reorder_fault_delivers_newest_first(sandbox, receiver):
    sandbox.faults.add(NotificationFault(NotificationEffect.REORDER, hold=2, times=2))
    payment = _payment(capture=False)
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")
    time.sleep(0.1)
    assert receiver.received == []

    Payment.capture(payment.id, None, "key-capture")

    receiver.wait_for(2)
    assert [event for event, _ in receiver.events()] == ["payment.succeeded", "payment.waiting_for_capture"]


def test_reorder_fault_with_its_defaults_leaves_no_notification_behind(sandbox, receiver):
    sandbox.faults.add(NotificationFault(NotificationEffect.REORDER))
    payment = _payment(capture=False)
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    Payment.capture(payment.id, None, "key-capture")

    receiver.wait_for(2)
    assert [event for event, _ in receiver.events()] == ["payment.succeeded", "payment.waiting_for_capture"]
    assert sandbox.store.notifications(state="held") == []
    assert sandbox.faults.describe()["notifications"] == []


def test_reorder_fault_counts_its_times_in_groups(sandbox, receiver):
    sandbox.faults.add(NotificationFault(NotificationEffect.REORDER, hold=2, times=1))
    first, second = _payment(capture=False, key="key-n1"), _payment(capture=False, key="key-n2")
    pay_on_page(first.confirmation.confirmation_url, "5555555555554444")
    pay_on_page(second.confirmation.confirmation_url, "5555555555554444")
    receiver.wait_for(2)

    Payment.capture(first.id, None, "key-capture")

    received = receiver.wait_for(3)
    assert [(body["event"], body["object"]["id"]) for body in received] == [
        ("payment.waiting_for_capture", second.id),
        ("payment.waiting_for_capture", first.id),
        ("payment.succeeded", first.id),
    ]


def test_notifications_held_by_a_cleared_reorder_fault_are_released(sandbox, receiver):
    sandbox.faults.add(NotificationFault(NotificationEffect.REORDER, hold=3))
    payment = _payment()
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")
    time.sleep(0.1)
    assert receiver.received == []

    sandbox.faults.clear()

    [notification] = receiver.wait_for(1)
    assert notification["event"] == "payment.succeeded"
