"""Refunds as the official SDK sees them: only of succeeded payments, never above what was paid."""

import pytest
from yookassa import Payment, Refund
from yookassa.domain.exceptions import BadRequestError, NotFoundError

from sandbox.emulator import RefundOutcome
from tests.helpers import pay_on_page

pytestmark = pytest.mark.usefixtures("sdk")


def _paid_payment(value: str = "300.00") -> str:
    payment = Payment.create(
        {
            "amount": {"value": value, "currency": "RUB"},
            "confirmation": {"type": "redirect", "return_url": "https://cinema.example/return"},
            "capture": True,
        },
        f"key-pay-{value}",
    )
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")
    return payment.id


def _refund(payment_id: str, value: str, key: str):
    return Refund.create({"payment_id": payment_id, "amount": {"value": value, "currency": "RUB"}}, key)


def test_refund_succeeds_and_shows_on_the_payment(sandbox):
    payment_id = _paid_payment()

    refund = _refund(payment_id, "100.00", "key-r1")

    assert refund.status == "succeeded"
    assert refund.payment_id == payment_id
    assert refund.amount.value == 100.0
    payment = Payment.find_one(payment_id)
    assert payment.refunded_amount.value == 100.0
    assert payment.refundable is True


def test_refunds_up_to_the_amount_then_refused(sandbox):
    payment_id = _paid_payment()
    _refund(payment_id, "200.00", "key-r1")
    _refund(payment_id, "100.00", "key-r2")

    with pytest.raises(BadRequestError) as error:
        _refund(payment_id, "0.01", "key-r3")

    assert error.value.content["description"] == "Payment is already completely refunded"
    assert Payment.find_one(payment_id).refundable is False
    assert sandbox.store.count_refunds() == 2


def test_refund_sum_exceeded(sandbox):
    payment_id = _paid_payment()
    _refund(payment_id, "250.00", "key-r1")

    with pytest.raises(BadRequestError) as error:
        _refund(payment_id, "50.01", "key-r2")

    assert error.value.content["description"] == "Refund sum exceeded"
    assert sandbox.store.count_refunds() == 1


def test_refund_replays_with_the_same_key(sandbox):
    payment_id = _paid_payment()
    first = _refund(payment_id, "300.00", "key-same")

    again = _refund(payment_id, "300.00", "key-same")

    assert again.id == first.id
    assert sandbox.store.count_refunds() == 1


def test_refund_of_an_unpaid_payment_is_refused(sandbox):
    payment = Payment.create(
        {
            "amount": {"value": "10.00", "currency": "RUB"},
            "confirmation": {"type": "redirect", "return_url": "https://x.example/"},
        },
        "key-unpaid",
    )

    with pytest.raises(BadRequestError) as error:
        _refund(payment.id, "10.00", "key-r")

    assert error.value.content["description"] == "Payment can not be refunded in current status"


def test_refund_of_an_unknown_payment_is_refused(sandbox):
    with pytest.raises(BadRequestError) as error:
        _refund("00000000-000f-5000-8000-000000000000", "10.00", "key-r")

    assert error.value.content["parameter"] == "payment_id"


def test_pending_refund_counts_toward_the_limit_until_settled(sandbox):
    payment_id = _paid_payment()
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    pending = _refund(payment_id, "300.00", "key-pending")
    assert pending.status == "pending"
    with pytest.raises(BadRequestError):
        _refund(payment_id, "1.00", "key-more")

    sandbox.emulator.settle_refund(pending.id, "succeeded")

    assert Refund.find_one(pending.id).status == "succeeded"
    assert Payment.find_one(payment_id).refunded_amount.value == 300.0


def test_canceled_refund_frees_the_amount_again(sandbox):
    payment_id = _paid_payment()
    sandbox.emulator.refund_outcome = RefundOutcome.CANCELED
    canceled = _refund(payment_id, "300.00", "key-canceled")
    sandbox.emulator.refund_outcome = RefundOutcome.SUCCEEDED

    retried = _refund(payment_id, "300.00", "key-retried")

    assert canceled.status == "canceled"
    assert canceled.cancellation_details.party == "refund_network"
    assert retried.status == "succeeded"


def test_refund_lookup_and_list(sandbox):
    payment_id = _paid_payment()
    first = _refund(payment_id, "100.00", "key-a")
    second = _refund(payment_id, "100.00", "key-b")

    listed = Refund.list({"payment_id": payment_id, "limit": 1})
    rest = Refund.list({"payment_id": payment_id, "limit": 1, "cursor": listed.next_cursor})

    assert Refund.find_one(first.id).id == first.id
    assert [r.id for r in listed.items + rest.items] == [second.id, first.id]
    with pytest.raises(NotFoundError):
        Refund.find_one("00000000-0015-5000-8000-000000000000")
