"""The sandbox as the official `yookassa` SDK sees it: payments, idempotence, test cards, saved cards."""

import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from yookassa import Configuration, Payment, Refund
from yookassa.domain.exceptions import BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError

from sandbox.cards import TEST_CARDS
from tests.helpers import FUTURE_EXPIRY, pay_on_page

pytestmark = pytest.mark.usefixtures("sdk")

RETURN_URL = "https://cinema.example/return"


def _params(**overrides) -> dict:
    params = {
        "amount": {"value": "299.00", "currency": "RUB"},
        "confirmation": {"type": "redirect", "return_url": RETURN_URL},
        "capture": True,
        "description": "Basic, 1 month",
        "metadata": {"payment_id": "42"},
    }
    params.update(overrides)
    return params


def test_create_payment_is_pending_with_a_payment_page(sandbox):
    payment = Payment.create(_params(), "key-create")

    assert payment.status == "pending"
    assert payment.paid is False
    assert payment.amount.value == 299.0
    assert payment.amount.currency == "RUB"
    assert payment.test is True
    assert payment.metadata["payment_id"] == "42"
    assert payment.confirmation.confirmation_url == f"{sandbox.url}/checkout/{payment.id}"
    assert len(payment.id) == 36


def test_same_key_and_body_replays_the_first_payment(sandbox):
    first = Payment.create(_params(), "key-replay")

    second = Payment.create(_params(), "key-replay")

    assert second.id == first.id
    assert sandbox.store.count_payments() == 1


def test_same_key_with_another_body_is_refused_and_creates_nothing(sandbox):
    Payment.create(_params(), "key-conflict")

    with pytest.raises(BadRequestError) as error:
        Payment.create(_params(amount={"value": "599.00", "currency": "RUB"}), "key-conflict")

    assert error.value.content["code"] == "invalid_request"
    assert error.value.content["description"] == "Idempotence key duplicated"
    assert error.value.content["parameter"] == "Idempotence-Key"
    assert sandbox.store.count_payments() == 1


def test_a_key_is_forgotten_after_24_hours(sandbox):
    first = Payment.create(_params(), "key-expiring")
    later = sandbox.config.clock() + timedelta(hours=24, seconds=1)
    sandbox.config.clock = lambda: later

    second = Payment.create(_params(), "key-expiring")

    assert second.id != first.id


def test_post_without_idempotence_key_is_refused(sandbox):
    response = requests.post(
        f"{sandbox.api_url}/payments",
        json=_params(),
        auth=(sandbox.config.shop_id, sandbox.config.secret_key),
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["description"] == "Idempotence key is empty"
    assert sandbox.store.count_payments() == 0


def test_idempotence_key_longer_than_64_characters_is_refused(sandbox):
    with pytest.raises(BadRequestError) as error:
        Payment.create(_params(), "k" * 65)

    assert error.value.content["parameter"] == "Idempotence-Key"
    assert sandbox.store.count_payments() == 0


@pytest.mark.parametrize("key", ["has space", "key#1", "a/b", "a:b", "clé", "key\tx"])
def test_idempotence_key_with_other_characters_is_refused(sandbox, key):
    response = requests.post(
        f"{sandbox.api_url}/payments",
        json=_params(),
        headers={"Idempotence-Key": key},
        auth=(sandbox.config.shop_id, sandbox.config.secret_key),
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert response.json()["parameter"] == "Idempotence-Key"
    assert sandbox.store.count_payments() == 0


def test_the_keys_billing_and_the_sdk_make_are_accepted(sandbox):
    # billing's payment-<uuid> and refund-<uuid>, and the SDK's own uuid4 when none is passed.
    payment = Payment.create(_params(), f"payment-{uuid.uuid4()}")
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    refund = Refund.create(
        {"payment_id": payment.id, "amount": {"value": "1.00", "currency": "RUB"}}, f"refund-{uuid.uuid4()}"
    )
    unkeyed = Payment.create(_params())

    assert refund.status == "succeeded"
    assert unkeyed.status == "pending"
    assert Payment.create(_params(), "a+b-c_d.e" * 7).status == "pending"


def test_wrong_credentials_get_401(sandbox):
    Configuration.configure(sandbox.config.shop_id, "wrong-secret", api_url=sandbox.api_url)

    with pytest.raises(UnauthorizedError) as error:
        Payment.create(_params(), "key-auth")

    assert error.value.content["code"] == "invalid_credentials"
    assert sandbox.store.count_payments() == 0


def test_missing_authorization_header_gets_401(sandbox):
    response = requests.get(f"{sandbox.api_url}/payments", timeout=5)

    assert response.status_code == 401
    assert response.json()["description"] == "Authorization header not found"


@pytest.mark.parametrize("path", ["/nothing-here", "/payments/x/refund", "/refunds/x/capture"])
def test_an_unknown_path_asks_for_credentials_first(sandbox, path):
    anonymous = requests.get(f"{sandbox.api_url}{path}", timeout=5)
    known = requests.get(
        f"{sandbox.api_url}{path}", auth=(sandbox.config.shop_id, sandbox.config.secret_key), timeout=5
    )

    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "invalid_credentials"
    assert known.status_code == 404


def test_a_wrong_method_asks_for_credentials_first(sandbox):
    anonymous = requests.delete(f"{sandbox.api_url}/payments", timeout=5)
    known = requests.delete(
        f"{sandbox.api_url}/payments", auth=(sandbox.config.shop_id, sandbox.config.secret_key), timeout=5
    )

    assert anonymous.status_code == 401
    assert known.status_code == 405


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "text/plain"}, {}],
    ids=["form", "text", "none"],
)
def test_a_post_that_is_not_json_is_415_and_does_nothing(sandbox, headers):
    response = requests.post(
        f"{sandbox.api_url}/payments",
        data=json.dumps(_params()),
        headers={"Idempotence-Key": "key-not-json", **headers},
        auth=(sandbox.config.shop_id, sandbox.config.secret_key),
        timeout=5,
    )

    assert response.status_code == 415
    assert sandbox.store.count_payments() == 0


def test_a_json_post_with_a_charset_is_fine(sandbox):
    response = requests.post(
        f"{sandbox.api_url}/payments",
        data=json.dumps(_params()).encode(),
        headers={"Idempotence-Key": "key-charset", "Content-Type": "application/json; charset=utf-8"},
        auth=(sandbox.config.shop_id, sandbox.config.secret_key),
        timeout=5,
    )

    assert response.status_code == 200


def test_unknown_payment_is_404(sandbox):
    with pytest.raises(NotFoundError) as error:
        Payment.find_one("00000000-000f-5000-8000-000000000000")

    assert error.value.content["description"] == "Payment not found or forbidden"


def test_invalid_amount_is_refused(sandbox):
    response = requests.post(
        f"{sandbox.api_url}/payments",
        json=_params(amount={"value": "12.345", "currency": "RUB"}),
        headers={"Idempotence-Key": "key-amount"},
        auth=(sandbox.config.shop_id, sandbox.config.secret_key),
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["parameter"] == "amount.value"


def test_raw_card_data_is_forbidden(sandbox):
    card = {"number": "5555555555554444", "expiry_year": "2030", "expiry_month": "12", "csc": "123"}
    params = _params(payment_method_data={"type": "bank_card", "card": card})

    with pytest.raises(ForbiddenError):
        Payment.create(params, "key-raw-card")


@pytest.mark.parametrize("card", [card for card in TEST_CARDS.values() if card.decline is None], ids=lambda c: c.number)
def test_success_cards_pay_and_return_to_the_shop(sandbox, card):
    payment = Payment.create(_params(), f"key-{card.number}")

    answer = pay_on_page(payment.confirmation.confirmation_url, card.number)

    assert answer.status_code == 303
    assert answer.headers["Location"] == RETURN_URL
    paid = Payment.find_one(payment.id)
    assert paid.status == "succeeded"
    assert paid.paid is True
    assert paid.payment_method.card.last4 == card.last4
    assert paid.payment_method.card.card_type == card.card_type
    assert paid.authorization_details.three_d_secure.applied is card.three_d_secure
    assert paid.captured_at is not None


@pytest.mark.parametrize("card", [card for card in TEST_CARDS.values() if card.decline], ids=lambda c: c.number)
def test_decline_cards_cancel_with_their_reason(sandbox, card):
    payment = Payment.create(_params(), f"key-{card.number}")

    answer = pay_on_page(payment.confirmation.confirmation_url, card.number)

    assert answer.status_code == 303
    declined = Payment.find_one(payment.id)
    assert declined.status == "canceled"
    assert declined.paid is False
    assert declined.cancellation_details.party == card.decline.party
    assert declined.cancellation_details.reason == card.decline.reason


def test_unknown_card_number_leaves_the_payment_pending(sandbox):
    payment = Payment.create(_params(), "key-unknown-card")

    answer = requests.post(
        payment.confirmation.confirmation_url,
        data={"card_number": "1234567812345678", "expiry": FUTURE_EXPIRY},
        timeout=5,
    )

    assert answer.status_code == 400
    assert "test cards" in answer.text
    assert Payment.find_one(payment.id).status == "pending"


def test_expired_card_date_is_asked_again(sandbox):
    payment = Payment.create(_params(), "key-expiry")

    answer = requests.post(
        payment.confirmation.confirmation_url, data={"card_number": "5555555555554444", "expiry": "01/20"}, timeout=5
    )

    assert answer.status_code == 400
    assert Payment.find_one(payment.id).status == "pending"


def test_a_form_with_only_the_card_number_pays_with_a_future_expiry(sandbox):
    payment = Payment.create(_params(), "key-number-only")

    answer = requests.post(
        payment.confirmation.confirmation_url,
        data={"card_number": "5555 5555 5555 4444"},
        allow_redirects=False,
        timeout=5,
    )

    assert answer.status_code == 303
    paid = Payment.find_one(payment.id)
    assert paid.status == "succeeded"
    card = paid.payment_method.card
    assert (int(card.expiry_year), int(card.expiry_month)) > (datetime.now(UTC).year, datetime.now(UTC).month)


def test_a_three_d_secure_card_with_only_its_number_goes_through_three_d_secure(sandbox):
    payment = Payment.create(_params(), "key-number-only-3ds")
    url = payment.confirmation.confirmation_url

    answer = requests.post(url, data={"card_number": "5555555555554477"}, allow_redirects=False, timeout=5)
    confirmed = requests.post(f"{url}/3ds", data={"code": "123456"}, allow_redirects=False, timeout=5)

    assert answer.status_code == 200
    assert "3-D Secure" in answer.text
    assert confirmed.status_code == 303
    assert Payment.find_one(payment.id).authorization_details.three_d_secure.applied is True


@pytest.mark.parametrize("csc", ["12", "12345", "abc"])
def test_a_malformed_security_code_is_asked_again(sandbox, csc):
    payment = Payment.create(_params(), f"key-csc-{csc}")

    answer = requests.post(
        payment.confirmation.confirmation_url,
        data={"card_number": "5555555555554444", "expiry": FUTURE_EXPIRY, "csc": csc},
        timeout=5,
    )

    assert answer.status_code == 400
    assert "Card csc is illegal" in answer.text
    assert Payment.find_one(payment.id).status == "pending"


def test_the_page_offers_an_expiry_date_in_the_future_whatever_the_year(sandbox):
    sandbox.config.clock = lambda: datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
    payment = Payment.create(_params(), "key-page-expiry")

    page = requests.get(payment.confirmation.confirmation_url, timeout=5)
    month, year = re.search(r'name="expiry"[^>]*value="(\d\d)/(\d\d)"', page.text).groups()
    paid = requests.post(
        payment.confirmation.confirmation_url,
        data={"card_number": "5555555555554444", "expiry": f"{month}/{year}", "csc": "123"},
        allow_redirects=False,
        timeout=5,
    )

    assert (2000 + int(year), int(month)) > (2031, 6)
    assert paid.status_code == 303
    assert Payment.find_one(payment.id).status == "succeeded"


def test_paying_twice_on_the_page_charges_once(sandbox):
    payment = Payment.create(_params(), "key-pay-twice")
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    again = requests.post(
        payment.confirmation.confirmation_url,
        data={"card_number": "5555555555554600", "expiry": FUTURE_EXPIRY},
        allow_redirects=False,
        timeout=5,
    )

    assert again.status_code == 303
    assert Payment.find_one(payment.id).status == "succeeded"


def test_payment_page_shows_shop_amount_and_description(sandbox):
    payment = Payment.create(_params(description="Premium <yearly>"), "key-page")

    page = requests.get(payment.confirmation.confirmation_url, timeout=5)

    assert page.status_code == 200
    assert sandbox.config.shop_name in page.text
    assert "299.00 RUB" in page.text
    assert "Premium &lt;yearly&gt;" in page.text
    assert 'name="card_number"' in page.text


def test_unpaid_payment_expires_on_confirmation(sandbox):
    payment = Payment.create(_params(), "key-abandoned")
    later = sandbox.config.clock() + sandbox.config.confirmation_ttl + timedelta(seconds=1)
    sandbox.config.clock = lambda: later

    sandbox.emulator.expire_due()

    expired = Payment.find_one(payment.id)
    assert expired.status == "canceled"
    assert expired.cancellation_details.reason == "expired_on_confirmation"


def test_capture_false_waits_for_capture_then_captures(sandbox):
    payment = Payment.create(_params(capture=False), "key-two-step")
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")
    assert Payment.find_one(payment.id).status == "waiting_for_capture"

    captured = Payment.capture(payment.id, {"amount": {"value": "199.00", "currency": "RUB"}}, "key-capture")

    assert captured.status == "succeeded"
    assert captured.amount.value == 199.0


def test_cancel_waiting_for_capture(sandbox):
    payment = Payment.create(_params(capture=False), "key-to-cancel")
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    canceled = Payment.cancel(payment.id, "key-cancel")

    assert canceled.status == "canceled"
    assert canceled.cancellation_details.party == "merchant"
    assert canceled.cancellation_details.reason == "canceled_by_merchant"


def test_capture_of_a_pending_payment_is_refused(sandbox):
    payment = Payment.create(_params(capture=False), "key-not-paid")

    with pytest.raises(BadRequestError):
        Payment.capture(payment.id, None, "key-capture-early")


def test_waiting_for_capture_expires_on_capture(sandbox):
    payment = Payment.create(_params(capture=False), "key-never-captured")
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")
    later = sandbox.config.clock() + sandbox.config.capture_ttl + timedelta(seconds=1)
    sandbox.config.clock = lambda: later

    sandbox.emulator.expire_due()

    assert Payment.find_one(payment.id).cancellation_details.reason == "expired_on_capture"


def _saved_card(sandbox, card="5555555555554444") -> str:
    payment = Payment.create(_params(save_payment_method=True), f"key-save-{card}")
    pay_on_page(payment.confirmation.confirmation_url, card)
    paid = Payment.find_one(payment.id)
    assert paid.payment_method.saved is True
    assert paid.payment_method.status == "active"
    return paid.payment_method.id


def test_saved_method_is_charged_at_once_without_confirmation(sandbox):
    method_id = _saved_card(sandbox)

    charge = Payment.create(
        {"amount": {"value": "299.00", "currency": "RUB"}, "payment_method_id": method_id, "capture": True}, "key-renew"
    )

    assert charge.status == "succeeded"
    assert charge.paid is True
    assert charge.confirmation is None
    assert charge.payment_method.id == method_id


def test_method_of_a_payment_without_save_cannot_be_charged(sandbox):
    payment = Payment.create(_params(), "key-no-save")
    pay_on_page(payment.confirmation.confirmation_url, "5555555555554444")

    with pytest.raises(BadRequestError) as error:
        Payment.create({"amount": {"value": "1.00", "currency": "RUB"}, "payment_method_id": payment.id}, "key-x")

    assert error.value.content["description"] == "Payment method is not saved"


def test_revoked_method_is_canceled_with_permission_revoked(sandbox):
    method_id = _saved_card(sandbox)
    sandbox.emulator.revoke_payment_method(method_id)

    charge = Payment.create(
        {"amount": {"value": "299.00", "currency": "RUB"}, "payment_method_id": method_id, "capture": True},
        "key-revoked",
    )

    assert charge.status == "canceled"
    assert charge.cancellation_details.reason == "permission_revoked"


def test_saved_card_can_be_made_to_decline(sandbox):
    method_id = _saved_card(sandbox)
    sandbox.emulator.set_payment_method_decline(method_id, "insufficient_funds")

    charge = Payment.create(
        {"amount": {"value": "299.00", "currency": "RUB"}, "payment_method_id": method_id, "capture": True}, "key-poor"
    )

    assert charge.status == "canceled"
    assert charge.cancellation_details.party == "payment_network"
    assert charge.cancellation_details.reason == "insufficient_funds"


def test_list_pages_newest_first_with_a_cursor(sandbox):
    created = [Payment.create(_params(), f"key-list-{n}").id for n in range(5)]

    first = Payment.list({"limit": 2})
    second = Payment.list({"limit": 2, "cursor": first.next_cursor})
    third = Payment.list({"limit": 2, "cursor": second.next_cursor})

    listed = [p.id for p in first.items + second.items + third.items]
    assert listed == list(reversed(created))
    assert third.next_cursor is None


def test_list_filters_by_status_and_creation_time(sandbox):
    # A second apart on the sandbox's clock: created in one millisecond, the two would tie on created_at.
    first_moment = datetime.now(UTC).replace(microsecond=0)
    sandbox.config.clock = lambda: first_moment
    pending = Payment.create(_params(), "key-f1")
    sandbox.config.clock = lambda: first_moment + timedelta(seconds=1)
    paid = Payment.create(_params(), "key-f2")
    pay_on_page(paid.confirmation.confirmation_url, "5555555555554444")

    succeeded = Payment.list({"status": "succeeded"})
    since_second = Payment.list({"created_at.gte": Payment.find_one(paid.id).created_at})

    assert [p.id for p in succeeded.items] == [paid.id]
    assert pending.id not in [p.id for p in since_second.items]
    assert paid.id in [p.id for p in since_second.items]


def test_list_with_a_bad_cursor_is_refused(sandbox):
    with pytest.raises(BadRequestError) as error:
        Payment.list({"cursor": "not-a-cursor"})

    assert error.value.content["parameter"] == "cursor"


def test_concurrent_requests_with_one_key_create_one_payment(sandbox):
    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(lambda _: Payment.create(_params(), "key-race").id, range(50)))

    assert len(ids) == 1
    assert sandbox.store.count_payments() == 1
