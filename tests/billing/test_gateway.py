"""The YooKassa gateway over HTTP against the sandbox: the port's dataclasses, the caller's keys,
bounded calls, and failures that say whether the outcome at YooKassa is known."""

import socket
import time
from decimal import Decimal

import pytest
import requests

from billing.errors import ProviderObjectNotFound, ProviderOutcomeUnknown, ProviderRejected, ProviderUnavailable
from billing.gateway.deadline import call_deadline, deadline_session
from billing.gateway.interface import (
    Cancellation,
    NewPayment,
    NewRefund,
    ProviderPaymentStatus,
    ProviderRefundStatus,
    Receipt,
    ReceiptItem,
)
from billing.gateway.yookassa import YooKassaGateway
from billing.gateway.yookassa_client import YooKassaConfig
from billing.money import Money
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import pay_on_page

READ_TIMEOUT = 0.5
CALL_TIMEOUT = 1.5
RUB_299 = Money.of("299.00", "RUB")


def _gateway(api_url: str, shop_id: str, secret_key: str) -> YooKassaGateway:
    return YooKassaGateway(
        YooKassaConfig(
            shop_id=shop_id,
            secret_key=secret_key,
            api_url=api_url,
            connect_timeout=1.0,
            read_timeout=READ_TIMEOUT,
            call_timeout=CALL_TIMEOUT,
        )
    )


@pytest.fixture
def gateway(sandbox):
    return _gateway(sandbox.api_url, sandbox.config.shop_id, sandbox.config.secret_key)


def _checkout(**overrides) -> NewPayment:
    fields = {
        "amount": RUB_299,
        "description": "Basic, 1 month",
        "metadata": {"payment": "p-1"},
        "return_url": "https://cinema.example/return",
    }
    return NewPayment(**(fields | overrides))


def _paid(gateway, sandbox, *, card: str = "5555555555554444", save: bool = False, key: str = "pay-1"):
    payment = gateway.create_payment(_checkout(save_payment_method=save), idempotence_key=key)
    pay_on_page(payment.confirmation_url, card)
    return gateway.get_payment(payment.id)


def test_create_payment_returns_a_pending_payment_with_its_page(gateway, sandbox):
    payment = gateway.create_payment(_checkout(), idempotence_key="checkout-1")

    assert payment.status is ProviderPaymentStatus.PENDING
    assert payment.amount == RUB_299
    assert payment.paid is False
    assert payment.confirmation_url.startswith(f"{sandbox.url}/checkout/")
    assert payment.metadata["payment"] == "p-1"
    assert payment.test is True
    assert payment.raw["id"] == payment.id


def test_the_callers_key_is_sent_so_a_repeat_is_the_same_payment(gateway, sandbox):
    first = gateway.create_payment(_checkout(), idempotence_key="checkout-same")

    second = gateway.create_payment(_checkout(), idempotence_key="checkout-same")

    assert second.id == first.id
    assert sandbox.store.count_payments() == 1


@pytest.mark.parametrize("key", ["", "k" * 65, "has space", None])
def test_a_missing_or_malformed_key_is_refused_before_any_call(gateway, sandbox, key):
    with pytest.raises(ValueError, match="Idempotence-Key"):
        gateway.create_payment(_checkout(), idempotence_key=key)

    assert sandbox.store.count_payments() == 0


def test_a_paid_payment_reads_back_with_its_saved_method(gateway, sandbox):
    payment = _paid(gateway, sandbox, save=True)

    assert payment.status is ProviderPaymentStatus.SUCCEEDED
    assert payment.paid is True
    assert payment.captured_at is not None
    assert payment.payment_method.saved is True
    assert payment.payment_method.title == "Bank card *4444"
    assert payment.payment_method.card_last4 == "4444"
    assert payment.payment_method.card_type == "MasterCard"


def test_a_declined_payment_reads_back_with_its_reason(gateway, sandbox):
    payment = _paid(gateway, sandbox, card="5555555555554600")

    assert payment.status is ProviderPaymentStatus.CANCELED
    assert payment.cancellation == Cancellation(party="payment_network", reason="insufficient_funds")


def test_a_saved_method_is_charged_without_confirmation(gateway, sandbox):
    method_id = _paid(gateway, sandbox, save=True).payment_method.id

    renewal = gateway.create_payment(
        NewPayment(amount=RUB_299, description="Renewal", payment_method_id=method_id), idempotence_key="renewal-1"
    )

    assert renewal.status is ProviderPaymentStatus.SUCCEEDED
    assert renewal.confirmation_url is None


def test_a_revoked_method_charge_is_canceled_with_permission_revoked(gateway, sandbox):
    method_id = _paid(gateway, sandbox, save=True).payment_method.id
    sandbox.emulator.revoke_payment_method(method_id)

    renewal = gateway.create_payment(
        NewPayment(amount=RUB_299, description="Renewal", payment_method_id=method_id), idempotence_key="renewal-2"
    )

    assert renewal.status is ProviderPaymentStatus.CANCELED
    assert renewal.cancellation.reason == "permission_revoked"


def _authorized(gateway, key: str):
    """A two-step payment the payer has paid, waiting for the shop to capture or cancel it."""
    payment = gateway.create_payment(_checkout(capture=False), idempotence_key=key)
    pay_on_page(payment.confirmation_url, "5555555555554444")
    authorized = gateway.get_payment(payment.id)
    assert authorized.status is ProviderPaymentStatus.WAITING_FOR_CAPTURE
    return authorized


def test_capture_without_an_amount_takes_the_whole_payment(gateway, sandbox):
    payment = _authorized(gateway, "hold-full")

    captured = gateway.capture_payment(payment.id, idempotence_key="capture-full")

    assert captured.id == payment.id
    assert captured.status is ProviderPaymentStatus.SUCCEEDED
    assert captured.amount == RUB_299
    assert captured.captured_at is not None
    assert gateway.get_payment(payment.id).status is ProviderPaymentStatus.SUCCEEDED


def test_capture_of_part_takes_only_that_part(gateway, sandbox):
    payment = _authorized(gateway, "hold-part")

    captured = gateway.capture_payment(payment.id, amount=Money.of("199.50", "RUB"), idempotence_key="capture-part")

    assert captured.status is ProviderPaymentStatus.SUCCEEDED
    assert captured.amount == Money.of("199.50", "RUB")
    assert gateway.get_payment(payment.id).amount == Money.of("199.50", "RUB")


def test_a_repeated_capture_with_the_same_key_is_the_same_capture(gateway, sandbox):
    payment = _authorized(gateway, "hold-repeat")
    first = gateway.capture_payment(payment.id, amount=Money.of("100.00", "RUB"), idempotence_key="capture-once")

    again = gateway.capture_payment(payment.id, amount=Money.of("100.00", "RUB"), idempotence_key="capture-once")

    assert again == first


def test_cancel_releases_the_hold_with_the_merchants_reason(gateway, sandbox):
    payment = _authorized(gateway, "hold-cancel")

    canceled = gateway.cancel_payment(payment.id, idempotence_key="cancel-1")

    assert canceled.status is ProviderPaymentStatus.CANCELED
    assert canceled.paid is False
    assert canceled.cancellation == Cancellation(party="merchant", reason="canceled_by_merchant")
    assert gateway.get_payment(payment.id).status is ProviderPaymentStatus.CANCELED


@pytest.mark.parametrize("operation", ["capture", "cancel"])
def test_capture_or_cancel_in_the_wrong_status_is_a_rejection_that_changes_nothing(gateway, sandbox, operation):
    pending = gateway.create_payment(_checkout(capture=False), idempotence_key="not-paid-yet")
    call = {
        "capture": lambda: gateway.capture_payment(pending.id, idempotence_key="too-early"),
        "cancel": lambda: gateway.cancel_payment(pending.id, idempotence_key="too-early"),
    }[operation]

    with pytest.raises(ProviderRejected) as error:
        call()

    assert error.value.outcome_known is True
    assert error.value.http_status == 400
    assert error.value.provider_code == "invalid_request"
    assert gateway.get_payment(pending.id).status is ProviderPaymentStatus.PENDING


def test_capture_above_the_authorized_amount_is_a_rejection(gateway, sandbox):
    payment = _authorized(gateway, "hold-too-much")

    with pytest.raises(ProviderRejected) as error:
        gateway.capture_payment(payment.id, amount=Money.of("299.01", "RUB"), idempotence_key="capture-too-much")

    assert error.value.parameter == "amount"
    assert gateway.get_payment(payment.id).status is ProviderPaymentStatus.WAITING_FOR_CAPTURE


def test_capture_of_an_unknown_payment_is_a_rejection(gateway, sandbox):
    with pytest.raises(ProviderRejected):
        gateway.capture_payment("00000000-000f-5000-8000-000000000000", idempotence_key="capture-nothing")


def test_receipt_data_is_accepted(gateway, sandbox):
    receipt = Receipt(
        customer_email="viewer@example.com",
        items=(ReceiptItem(description="Basic, 1 month", unit_price=RUB_299, vat_code=1),),
    )

    payment = gateway.create_payment(_checkout(receipt=receipt), idempotence_key="with-receipt")

    assert payment.raw["receipt_registration"] == "pending"


def test_a_request_the_sdk_finds_invalid_is_refused_before_any_call(gateway, sandbox):
    receipt = Receipt(customer_email="", items=(ReceiptItem(description="Plan", unit_price=RUB_299, vat_code=1),))

    with pytest.raises(ProviderRejected, match="refused before sending"):
        gateway.create_payment(_checkout(receipt=receipt), idempotence_key="bad-receipt")

    assert sandbox.store.count_payments() == 0


def test_refund_is_created_read_and_listed(gateway, sandbox):
    payment = _paid(gateway, sandbox)

    refund = gateway.create_refund(
        NewRefund(provider_payment_id=payment.id, amount=Money.of("100.00", "RUB"), description="Canceled"),
        idempotence_key="refund-1",
    )

    assert refund.status is ProviderRefundStatus.SUCCEEDED
    assert refund.amount == Money.of("100.00", "RUB")
    assert gateway.get_refund(refund.id) == refund
    assert [r.id for r in gateway.list_refunds(provider_payment_id=payment.id).items] == [refund.id]
    assert gateway.get_payment(payment.id).refunded == Money.of("100.00", "RUB")


def test_a_refund_above_what_was_paid_is_rejected_with_a_known_outcome(gateway, sandbox):
    payment = _paid(gateway, sandbox)

    with pytest.raises(ProviderRejected) as error:
        gateway.create_refund(
            NewRefund(provider_payment_id=payment.id, amount=Money.of("299.01", "RUB")), idempotence_key="refund-big"
        )

    assert error.value.outcome_known is True
    assert error.value.http_status == 400
    assert error.value.provider_code == "invalid_request"
    assert error.value.parameter == "amount.value"
    assert sandbox.store.count_refunds() == 0


def test_an_unknown_payment_is_not_found(gateway, sandbox):
    with pytest.raises(ProviderObjectNotFound):
        gateway.get_payment("00000000-000f-5000-8000-000000000000")


def test_list_payments_pages_through_everything_since_a_moment(gateway, sandbox):
    ids = {gateway.create_payment(_checkout(), idempotence_key=f"list-{n}").id for n in range(5)}
    since = gateway.get_payment(min(ids)).created_at.replace(year=2000)

    seen, cursor = set(), None
    while True:
        page = gateway.list_payments(created_since=since, cursor=cursor, limit=2)
        seen |= {payment.id for payment in page.items}
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == ids


def test_wrong_credentials_are_a_rejection(sandbox):
    gateway = _gateway(sandbox.api_url, sandbox.config.shop_id, "not-the-secret")

    with pytest.raises(ProviderRejected) as error:
        gateway.get_payment("00000000-000f-5000-8000-000000000000")

    assert error.value.http_status == 401


# --- faults: what the caller learns, and that a retry with the same key never charges twice ---


def test_500_after_the_operation_is_outcome_unknown_and_the_retry_finds_it(gateway, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create", applied=True))

    with pytest.raises(ProviderOutcomeUnknown) as error:
        gateway.create_payment(_checkout(), idempotence_key="unknown-500")
    retried = gateway.create_payment(_checkout(), idempotence_key="unknown-500")

    assert error.value.outcome_known is False
    assert error.value.http_status == 500
    assert sandbox.store.count_payments() == 1
    assert retried.id == sandbox.store.recent_payments(1)[0]["id"]


def test_500_before_the_operation_is_outcome_unknown_and_the_retry_creates_it_once(gateway, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create", applied=False))

    with pytest.raises(ProviderOutcomeUnknown):
        gateway.create_payment(_checkout(), idempotence_key="unknown-500-before")
    assert sandbox.store.count_payments() == 0
    gateway.create_payment(_checkout(), idempotence_key="unknown-500-before")

    assert sandbox.store.count_payments() == 1


def test_429_is_unavailable_with_a_known_outcome_and_a_retry_hint(gateway, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_429, kind="payments.create"))

    with pytest.raises(ProviderUnavailable) as error:
        gateway.create_payment(_checkout(), idempotence_key="rate-limited")

    assert not isinstance(error.value, ProviderOutcomeUnknown)
    assert error.value.outcome_known is True
    assert error.value.retry_after == pytest.approx(1.8)
    assert sandbox.store.count_payments() == 0


def test_202_processing_is_outcome_unknown(gateway, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_202, kind="refunds.create"))
    payment = _paid(gateway, sandbox)

    with pytest.raises(ProviderOutcomeUnknown) as error:
        gateway.create_refund(NewRefund(provider_payment_id=payment.id, amount=RUB_299), idempotence_key="refund-202")

    assert error.value.http_status == 202


def test_a_slow_answer_is_cut_at_the_read_timeout_and_the_retry_finds_the_payment(gateway, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=READ_TIMEOUT * 4))

    started = time.monotonic()
    with pytest.raises(ProviderOutcomeUnknown) as error:
        gateway.create_payment(_checkout(), idempotence_key="slow-1")
    elapsed = time.monotonic() - started
    retried = gateway.create_payment(_checkout(), idempotence_key="slow-1")

    assert READ_TIMEOUT <= elapsed < READ_TIMEOUT + 0.5
    assert "did not answer in time" in str(error.value)
    assert sandbox.store.count_payments() == 1
    assert retried.status is ProviderPaymentStatus.PENDING


def test_a_slow_read_is_bounded_too(gateway, sandbox):
    payment = gateway.create_payment(_checkout(), idempotence_key="slow-read")
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.get", delay=READ_TIMEOUT * 4))

    started = time.monotonic()
    with pytest.raises(ProviderOutcomeUnknown):
        gateway.get_payment(payment.id)

    assert time.monotonic() - started < READ_TIMEOUT + 0.5


def test_an_answer_trickling_in_is_cut_at_the_call_timeout_and_the_retry_finds_the_payment(gateway, sandbox):
    # Every byte comes well within the read timeout: only a bound on the whole call ends this one.
    sandbox.faults.add(ApiFault(ApiEffect.TRICKLE, kind="payments.create", delay=READ_TIMEOUT / 5))

    started = time.monotonic()
    with pytest.raises(ProviderOutcomeUnknown) as error:
        gateway.create_payment(_checkout(), idempotence_key="trickle-1")
    elapsed = time.monotonic() - started
    retried = gateway.create_payment(_checkout(), idempotence_key="trickle-1")

    assert CALL_TIMEOUT <= elapsed < CALL_TIMEOUT + 0.5
    assert error.value.outcome_known is False
    assert "did not answer in time" in str(error.value)
    assert sandbox.store.count_payments() == 1
    assert retried.id == sandbox.store.recent_payments(1)[0]["id"]


def test_a_trickling_read_is_bounded_too(gateway, sandbox):
    payment = gateway.create_payment(_checkout(), idempotence_key="trickle-read")
    sandbox.faults.add(ApiFault(ApiEffect.TRICKLE, kind="payments.get", delay=READ_TIMEOUT / 5))

    started = time.monotonic()
    with pytest.raises(ProviderOutcomeUnknown):
        gateway.get_payment(payment.id)

    assert time.monotonic() - started < CALL_TIMEOUT + 0.5


def test_a_call_whose_time_is_up_before_it_connects_sends_nothing(sandbox):
    with call_deadline(0.01) as deadline:
        time.sleep(0.05)
        with deadline_session() as session, pytest.raises(requests.ConnectTimeout):
            session.post(
                f"{sandbox.api_url}/payments",
                json={
                    "amount": {"value": "1.00", "currency": "RUB"},
                    "confirmation": {"type": "redirect", "return_url": "https://cinema.example/return"},
                },
                headers={"Idempotence-Key": "too-late"},
                auth=(sandbox.config.shop_id, sandbox.config.secret_key),
                timeout=1,
            )

    assert deadline.expired is True
    assert sandbox.store.count_payments() == 0


def test_a_dropped_connection_after_the_operation_is_outcome_unknown(gateway, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.DROP, kind="payments.create", applied=True))

    with pytest.raises(ProviderOutcomeUnknown) as error:
        gateway.create_payment(_checkout(), idempotence_key="dropped-1")
    retried = gateway.create_payment(_checkout(), idempotence_key="dropped-1")

    assert "failed mid-request" in str(error.value)
    assert sandbox.store.count_payments() == 1
    assert retried.id == sandbox.store.recent_payments(1)[0]["id"]


def test_a_dropped_connection_before_the_operation_is_outcome_unknown_too(gateway, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.DROP, kind="refunds.create", applied=False))
    payment = _paid(gateway, sandbox)
    refund = NewRefund(provider_payment_id=payment.id, amount=RUB_299)

    with pytest.raises(ProviderOutcomeUnknown):
        gateway.create_refund(refund, idempotence_key="refund-dropped")
    gateway.create_refund(refund, idempotence_key="refund-dropped")

    assert sandbox.store.count_refunds() == 1


def test_nothing_listening_is_unavailable_with_a_known_outcome():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    gateway = _gateway(f"http://127.0.0.1:{closed_port}/v3", "100500", "secret")

    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as error:
        gateway.create_payment(_checkout(), idempotence_key="nobody-home")

    assert error.value.outcome_known is True
    assert time.monotonic() - started < 1.0


def test_an_unreadable_200_is_outcome_unknown(gateway, sandbox, monkeypatch):
    from sandbox import app

    monkeypatch.setattr(app.Response, "json", classmethod(lambda cls, status, data: cls(status, b"<html>oops")))

    with pytest.raises(ProviderOutcomeUnknown):
        gateway.create_payment(_checkout(), idempotence_key="garbled")


def test_money_never_goes_through_float(gateway, sandbox):
    # 16 significant digits, which a float cannot hold: the SDK's Amount model would send ...9.94.
    # (Up to NUMERIC(12,2)'s 9999999999.99 a float round-trips, so only a longer amount can tell.)
    amount = Money(Decimal("90071992547409.93"), "RUB")
    receipt = Receipt(customer_email="viewer@example.com", items=(ReceiptItem("Plan", unit_price=amount, vat_code=1),))

    payment = gateway.create_payment(_checkout(amount=amount, receipt=receipt), idempotence_key="big-amount")

    [received] = sandbox.store.recent_payments(1)
    assert received["amount"] == {"value": "90071992547409.93", "currency": "RUB"}
    assert payment.amount == amount


def test_an_id_cannot_reach_another_endpoint(gateway, sandbox):
    with pytest.raises(ProviderObjectNotFound):
        gateway.get_payment("../me")
