"""Fault switches as the raw SDK meets them, and the controls that set them over HTTP.

(What the service's gateway makes of each fault is in tests/billing/test_gateway.py.)
"""

import time

import pytest
import requests
from yookassa import Payment
from yookassa.domain.exceptions import InternalServerError, ResponseProcessingError, TooManyRequestsError

from sandbox.faults import ApiEffect, ApiFault

pytestmark = pytest.mark.usefixtures("sdk")

PARAMS = {
    "amount": {"value": "299.00", "currency": "RUB"},
    "confirmation": {"type": "redirect", "return_url": "https://cinema.example/return"},
    "capture": True,
}


def _control(sandbox, method: str, path: str, **kwargs) -> requests.Response:
    auth = (sandbox.config.shop_id, sandbox.config.secret_key)
    return requests.request(method, f"{sandbox.url}/sandbox/{path}", auth=auth, timeout=5, **kwargs)


def test_500_applied_reaches_the_sdk_as_internal_server_error_and_the_payment_exists(sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create"))

    with pytest.raises(InternalServerError) as error:
        Payment.create(PARAMS, "key-500")

    assert error.value.content["code"] == "internal_server_error"
    assert sandbox.store.count_payments() == 1
    assert Payment.create(PARAMS, "key-500").status == "pending"
    assert sandbox.store.count_payments() == 1


def test_429_and_202_do_nothing(sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_429, kind="payments.create"))
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_202, kind="payments.create"))

    with pytest.raises(TooManyRequestsError):
        Payment.create(PARAMS, "key-busy")
    with pytest.raises(ResponseProcessingError):
        Payment.create(PARAMS, "key-busy")

    assert sandbox.store.count_payments() == 0


def test_a_dropped_connection_surfaces_from_the_raw_sdk_as_attribute_error(sandbox):
    # The SDK's own trap (yookassa-notes.md 1.4): why the service wraps it.
    sandbox.faults.add(ApiFault(ApiEffect.DROP, kind="payments.create"))

    with pytest.raises(AttributeError):
        Payment.create(PARAMS, "key-drop")

    assert sandbox.store.count_payments() == 1


def test_a_slow_answer_is_waited_for_by_the_raw_sdk(sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=0.3))

    started = time.monotonic()
    payment = Payment.create(PARAMS, "key-slow")

    assert time.monotonic() - started >= 0.3
    assert payment.status == "pending"


def test_a_fault_affects_only_its_kind_and_its_count(sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.get", applied=False, times=2))
    payment = Payment.create(PARAMS, "key-kind")

    with pytest.raises(InternalServerError):
        Payment.find_one(payment.id)
    with pytest.raises(InternalServerError):
        Payment.find_one(payment.id)

    assert Payment.find_one(payment.id).id == payment.id


def test_a_fault_without_a_count_lasts_until_cleared(sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_429, kind="payments.list", times=None))
    for _ in range(3):
        with pytest.raises(TooManyRequestsError):
            Payment.list()

    sandbox.faults.clear()

    assert Payment.list().items == []


def test_faults_are_set_listed_and_cleared_over_http(sandbox):
    added = _control(sandbox, "POST", "faults", json={"scope": "api", "effect": "error_500", "kind": "payments.create"})
    listed = _control(sandbox, "GET", "faults").json()

    with pytest.raises(InternalServerError):
        Payment.create(PARAMS, "key-http-fault")
    _control(sandbox, "POST", "faults", json={"scope": "notifications", "effect": "lose", "times": None})
    cleared = _control(sandbox, "DELETE", "faults")

    assert added.status_code == 200
    assert [fault["effect"] for fault in listed["api"]] == ["error_500"]
    assert cleared.status_code == 200
    assert _control(sandbox, "GET", "faults").json() == {"api": [], "notifications": []}


def test_a_bad_fault_is_refused(sandbox):
    answer = _control(sandbox, "POST", "faults", json={"scope": "api", "effect": "error_500", "kind": "payments.nope"})

    assert answer.status_code == 400
    assert "Unknown request kind" in answer.json()["description"]


def test_controls_need_the_shops_credentials(sandbox):
    answer = requests.post(f"{sandbox.url}/sandbox/reset", timeout=5)

    assert answer.status_code == 401


def test_operator_actions_over_http(sandbox):
    payment = Payment.create(PARAMS, "key-expire")

    expired = _control(sandbox, "POST", f"payments/{payment.id}/expire").json()
    settings = _control(sandbox, "POST", "settings", json={"refund_outcome": "pending"}).json()

    assert expired["cancellation_details"]["reason"] == "expired_on_confirmation"
    assert settings["refund_outcome"] == "pending"


def test_a_listener_hears_each_api_request_before_its_fault_and_reset_forgets_it(sandbox):
    heard = []
    sandbox.app.listeners.append(lambda kind, request: heard.append((kind, request.headers.get("Idempotence-Key"))))
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_429, kind="payments.create"))

    with pytest.raises(TooManyRequestsError):
        Payment.create(PARAMS, "key-heard")
    created = Payment.create(PARAMS, "key-heard")
    Payment.find_one(created.id)
    sandbox.reset()

    assert heard == [("payments.create", "key-heard"), ("payments.create", "key-heard"), ("payments.get", None)]
    assert sandbox.app.listeners == []
