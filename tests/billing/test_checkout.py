"""subscription_start_checkout against the sandbox: a row before every call, one payment per intent."""

import uuid
from datetime import timedelta

import pytest
from django.db.models import F

from billing import services
from billing.errors import (
    AlreadySubscribed,
    EmailRequired,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidReturnUrl,
    PaymentInProgress,
    PlanNotFound,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
)
from billing.models import ClientRequest, Payment, PaymentKind, PaymentStatus, Subscription, SubscriptionStatus
from graphql_api.auth import Viewer
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import SeenAtYooKassa, committed, pay_on_page, start_checkout

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]

RETURN_URL = "https://cinema.example/return"
INSUFFICIENT_FUNDS_CARD = "5555555555554600"


checkout = start_checkout


def created_ago(payment, seconds):
    """As if the payment had been made `seconds` ago (rows keep real time, not billing's clock)."""
    Payment.objects.filter(pk=payment.pk).update(created_at=F("created_at") - timedelta(seconds=seconds))


def assert_nothing_created():
    assert Subscription.objects.count() == 0
    assert Payment.objects.count() == 0
    assert ClientRequest.objects.count() == 0


def test_checkout_creates_a_pending_payment_for_the_plan(viewer, plan, sandbox):
    result = checkout(viewer, plan)

    payment = result.payment
    assert payment.status == PaymentStatus.PENDING
    assert payment.kind == PaymentKind.INITIAL
    assert payment.money.amount == plan.price
    assert payment.viewer_id == viewer.id
    assert payment.idempotence_key == f"payment-{payment.id}"
    assert payment.confirmation_url.startswith(f"{sandbox.url}/checkout/")
    assert result.subscription.status == SubscriptionStatus.PENDING
    assert result.subscription.plan == plan
    provider = sandbox.emulator.get_payment(payment.provider_payment_id)
    assert provider["metadata"]["payment_id"] == str(payment.id)
    assert provider["amount"] == {"value": "299.00", "currency": "RUB"}
    assert provider["description"] == "Basic, 1 month"


@pytest.mark.django_db(transaction=True)
def test_the_payment_row_is_committed_before_yookassa_is_asked(viewer, plan, seen_at_yookassa):
    result = checkout(viewer, plan)

    assert result.payment.status == PaymentStatus.PENDING
    assert seen_at_yookassa == [
        SeenAtYooKassa("payments.create", result.payment.idempotence_key, PaymentStatus.CREATING)
    ]


def test_a_500_leaves_the_payment_creating_with_its_key_and_nothing_at_yookassa(viewer, plan, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create", applied=False))

    with pytest.raises(ProviderOutcomeUnknown) as raised:
        checkout(viewer, plan)

    result = committed(raised.value)
    assert result.payment.status == PaymentStatus.CREATING
    assert Payment.objects.get().idempotence_key == result.payment.idempotence_key
    assert sandbox.store.count_payments() == 0


def test_a_retry_after_a_timeout_reuses_the_key_and_yookassa_has_one_payment(viewer, plan, sandbox, settings):
    settings.YOOKASSA_READ_TIMEOUT = 0.3
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=1.0))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        checkout(viewer, plan, idempotency_key="click-1")
    first = committed(raised.value)
    assert first.payment.status == PaymentStatus.CREATING

    retried = checkout(viewer, plan, idempotency_key="click-1")  # no error raised

    assert retried.payment.pk == first.payment.pk
    assert retried.payment.status == PaymentStatus.PENDING
    assert sandbox.store.count_payments() == 1


def test_a_retry_without_a_key_after_a_timeout_finishes_the_same_payment(viewer, plan, sandbox, settings):
    settings.YOOKASSA_READ_TIMEOUT = 0.3
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=1.0))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        checkout(viewer, plan)
    first = committed(raised.value)

    retried = checkout(viewer, plan)

    assert retried.payment.pk == first.payment.pk
    assert retried.payment.status == PaymentStatus.PENDING
    assert sandbox.store.count_payments() == 1


def test_yookassa_rate_limit_leaves_the_payment_to_retry(viewer, plan, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_429, kind="payments.create"))

    with pytest.raises(ProviderUnavailable) as raised:
        checkout(viewer, plan)

    result = committed(raised.value)
    assert result.payment.status == PaymentStatus.CREATING
    assert checkout(viewer, plan).payment.status == PaymentStatus.PENDING


def test_a_repeat_with_the_same_key_returns_the_first_result(viewer, plan, sandbox):
    first = checkout(viewer, plan, idempotency_key="click-1")

    again = checkout(viewer, plan, idempotency_key="click-1")

    assert again.payment.pk == first.payment.pk
    assert again.payment.confirmation_url == first.payment.confirmation_url
    assert Payment.objects.count() == 1
    assert sandbox.store.count_payments() == 1


def test_the_same_key_with_other_input_is_refused_and_changes_nothing(viewer, plans, sandbox):
    checkout(viewer, plans["basic-monthly"], idempotency_key="click-1")

    with pytest.raises(IdempotencyKeyReused) as error:
        checkout(viewer, plans["basic-monthly"], idempotency_key="click-1", return_url="https://cinema.example/other")

    assert error.value.field == "idempotencyKey"
    assert Payment.objects.count() == 1
    assert sandbox.store.count_payments() == 1


def test_idempotency_keys_are_per_viewer(viewer, plan, sandbox):
    other = Viewer(id=uuid.uuid4(), email="other@example.com")
    mine = checkout(viewer, plan, idempotency_key="same-key")

    theirs = checkout(other, plan, idempotency_key="same-key")

    assert theirs.payment.pk != mine.payment.pk
    assert sandbox.store.count_payments() == 2


def test_a_pending_payment_for_the_plan_is_handed_back(viewer, plan, sandbox):
    first = checkout(viewer, plan)

    again = checkout(viewer, plan, idempotency_key="another-click")

    assert again.payment.pk == first.payment.pk
    assert sandbox.store.count_payments() == 1


def test_a_lapsed_pending_payment_is_replaced_by_a_new_attempt(viewer, plan, sandbox, settings):
    first = checkout(viewer, plan)
    sandbox.emulator.expire_payment(first.payment.provider_payment_id)
    Payment.objects.filter(pk=first.payment.pk).update(created_at=first.payment.created_at - timedelta(hours=1))

    again = checkout(viewer, plan)

    assert again.payment.pk != first.payment.pk
    assert again.payment.status == PaymentStatus.PENDING
    assert Payment.objects.get(pk=first.payment.pk).cancellation_reason == "expired_on_confirmation"
    assert Subscription.objects.get(pk=first.subscription.pk).status == SubscriptionStatus.FAILED
    assert sandbox.store.count_payments() == 2


def test_a_new_key_after_the_pending_payment_lapsed_opens_a_new_attempt(viewer, plan, sandbox):
    first = checkout(viewer, plan, idempotency_key="click-1")
    sandbox.emulator.expire_payment(first.payment.provider_payment_id)
    created_ago(first.payment, 3600)

    again = checkout(viewer, plan, idempotency_key="click-2")

    assert again.payment.pk != first.payment.pk
    assert again.payment.status == PaymentStatus.PENDING
    assert again.payment.confirmation_url.startswith(f"{sandbox.url}/checkout/")
    assert again.subscription.status == SubscriptionStatus.PENDING
    assert ClientRequest.objects.get(key="click-2").payment_id == again.payment.pk
    assert Payment.objects.get(pk=first.payment.pk).status == PaymentStatus.CANCELED
    assert sandbox.store.count_payments() == 2


def test_a_repeat_after_the_payment_lapsed_gets_the_first_payment_as_it_is_now(viewer, plan, sandbox):
    first = checkout(viewer, plan, idempotency_key="click-1")
    sandbox.emulator.expire_payment(first.payment.provider_payment_id)
    created_ago(first.payment, 3600)

    again = checkout(viewer, plan, idempotency_key="click-1")

    assert again.payment.pk == first.payment.pk
    assert again.payment.status == PaymentStatus.CANCELED
    assert again.subscription.status == SubscriptionStatus.FAILED
    assert sandbox.store.count_payments() == 1


@pytest.mark.parametrize("idempotency_key", ["click-2", None], ids=["new key", "no key"])
def test_a_declined_payment_whose_notification_is_late_is_not_handed_back(viewer, plan, sandbox, idempotency_key):
    first = checkout(viewer, plan, idempotency_key="click-1")
    pay_on_page(first.payment.confirmation_url, INSUFFICIENT_FUNDS_CARD)
    created_ago(first.payment, 60)

    again = checkout(viewer, plan, idempotency_key=idempotency_key)

    assert again.payment.pk != first.payment.pk
    assert again.payment.status == PaymentStatus.PENDING
    declined = Payment.objects.get(pk=first.payment.pk)
    assert (declined.status, declined.cancellation_reason) == (PaymentStatus.CANCELED, "insufficient_funds")
    assert sandbox.store.count_payments() == 2


def test_a_repeat_after_a_decline_whose_notification_is_late_gets_the_decline(viewer, plan, sandbox):
    first = checkout(viewer, plan, idempotency_key="click-1")
    pay_on_page(first.payment.confirmation_url, INSUFFICIENT_FUNDS_CARD)
    created_ago(first.payment, 60)

    again = checkout(viewer, plan, idempotency_key="click-1")

    assert again.payment.pk == first.payment.pk
    assert again.payment.status == PaymentStatus.CANCELED
    assert again.payment.cancellation_reason == "insufficient_funds"
    assert sandbox.store.count_payments() == 1


def test_a_pending_payment_seconds_old_is_handed_back_without_asking_yookassa(viewer, plan, sandbox_calls):
    first = checkout(viewer, plan)
    sandbox_calls.clear()

    again = checkout(viewer, plan, idempotency_key="another-click")

    assert again.payment.pk == first.payment.pk
    assert [call.kind for call in sandbox_calls] == []


def test_an_older_pending_payment_still_alive_is_handed_back_after_one_look_at_yookassa(viewer, plan, sandbox_calls):
    first = checkout(viewer, plan)
    created_ago(first.payment, 60)
    sandbox_calls.clear()

    again = checkout(viewer, plan, idempotency_key="click-2")

    assert again.payment.pk == first.payment.pk
    assert again.payment.status == PaymentStatus.PENDING
    assert again.payment.confirmation_url == first.payment.confirmation_url
    assert [call.kind for call in sandbox_calls] == ["payments.get"]
    assert ClientRequest.objects.get(key="click-2").payment_id == first.payment.pk


def test_when_yookassa_cannot_be_asked_the_pending_payment_is_handed_back_as_it_is(viewer, plan, sandbox):
    first = checkout(viewer, plan)
    created_ago(first.payment, 60)
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.get", applied=False))

    again = checkout(viewer, plan, idempotency_key="click-2")

    assert again.payment.pk == first.payment.pk
    assert again.payment.status == PaymentStatus.PENDING
    assert again.payment.confirmation_url == first.payment.confirmation_url


def test_a_repeat_after_the_plan_left_the_catalog_gets_the_first_result(viewer, plan, sandbox):
    first = checkout(viewer, plan, idempotency_key="click-1")
    plan.is_active = False
    plan.save()

    again = checkout(viewer, plan, idempotency_key="click-1")

    assert again.payment.pk == first.payment.pk
    assert again.payment.status == PaymentStatus.PENDING
    assert sandbox.store.count_payments() == 1


def test_after_a_declined_payment_a_new_checkout_starts_over(viewer, plan, sandbox):
    first = checkout(viewer, plan)
    pay_on_page(first.payment.confirmation_url, "5555555555554600")
    services.payment_refresh(provider_payment_id=first.payment.provider_payment_id)

    again = checkout(viewer, plan)

    assert again.payment.pk != first.payment.pk
    assert again.subscription.pk != first.subscription.pk
    assert Subscription.objects.get(pk=first.subscription.pk).status == SubscriptionStatus.FAILED


def test_an_active_subscriber_cannot_buy_again(viewer, plans, sandbox):
    first = checkout(viewer, plans["basic-monthly"])
    pay_on_page(first.payment.confirmation_url, "5555555555554444")
    services.payment_refresh(provider_payment_id=first.payment.provider_payment_id)

    for code in ("basic-monthly", "premium-monthly"):
        with pytest.raises(AlreadySubscribed, match="You already have the Basic subscription"):
            checkout(viewer, plans[code])

    assert Payment.objects.count() == 1
    assert sandbox.store.count_payments() == 1


def test_another_plan_while_a_payment_is_pending_is_refused(viewer, plans, sandbox):
    checkout(viewer, plans["basic-monthly"])

    with pytest.raises(PaymentInProgress):
        checkout(viewer, plans["premium-monthly"])

    assert Payment.objects.count() == 1


def test_an_unknown_or_inactive_plan_is_not_found(viewer, plans):
    plans["premium-yearly"].is_active = False
    plans["premium-yearly"].save()

    for plan_id in (plans["premium-yearly"].pk, 999_999):
        with pytest.raises(PlanNotFound) as error:
            services.subscription_start_checkout(
                viewer_id=viewer.id,
                viewer_email=viewer.email,
                plan_id=plan_id,
                return_url=RETURN_URL,
                save_payment_method=True,
                idempotency_key=None,
            )
        assert error.value.field == "planId"
    assert_nothing_created()


@pytest.mark.parametrize(
    "return_url",
    [
        "http://cinema.example/return",
        "https://evil.example/return",
        "https://cinema.example.evil.example/",
        "https://user@cinema.example/return",
        "javascript:alert(1)",
        "/return",
        "",
        "https://cinema.example/" + "x" * 2048,
    ],
)
def test_a_return_url_off_the_cinemas_sites_is_refused(viewer, plan, return_url):
    with pytest.raises(InvalidReturnUrl) as error:
        checkout(viewer, plan, return_url=return_url)

    assert error.value.field == "returnUrl"
    assert_nothing_created()


# Each passes a plain "does the host end with .cinema.example" check, yet a browser would go
# elsewhere, or the address is not one we could store or hand to YooKassa as it is.
MISREAD_RETURN_URLS = {
    "backslash-before-our-host": "https://evil.example\\.cinema.example/x",
    "backslash-in-userinfo": "https://evil.example\\@tv.cinema.example/x",
    "encoded-backslash": "https://evil.example%5c.cinema.example/x",
    "encoded-slash": "https://evil.example%2f.cinema.example/x",
    "space-in-host": "https://evil.example .cinema.example/x",
    "tab-in-host": "https://evil\t.cinema.example/x",
    "newline-in-path": "https://cinema.example/x\r\nLocation: https://evil.example/",
    "nul-in-host": "https://evil.example\x00.cinema.example/x",
    "nul-in-path": "https://cinema.example/return\x00",
    "zero-width-space": "https://evil.example\u200b.cinema.example/x",
    "right-to-left-override": "https://cinema.example/\u202eelpmaxe.live",
    "lone-surrogate": "https://cinema.example/\ud800",
    "cyrillic-label": "https://\u0441inema.tv.cinema.example/x",
    "fullwidth-dot": "https://evil.example\uff0ecinema.example/x",
    "underscore-label": "https://evil_example.cinema.example/x",
    "empty-label": "https://evil..cinema.example/x",
    "port-out-of-range": "https://cinema.example:99999/x",
    "password": "https://user:secret@cinema.example/x",
}


@pytest.mark.parametrize("return_url", MISREAD_RETURN_URLS.values(), ids=MISREAD_RETURN_URLS.keys())
def test_a_return_url_a_browser_could_read_otherwise_is_refused(viewer, plan, return_url):
    with pytest.raises(InvalidReturnUrl) as error:
        checkout(viewer, plan, return_url=return_url)

    assert error.value.field == "returnUrl"
    assert_nothing_created()


def test_subdomains_are_allowed_by_a_leading_dot(viewer, plan):
    result = checkout(viewer, plan, return_url="https://tv.cinema.example/paid")

    assert result.payment.return_url == "https://tv.cinema.example/paid"


@pytest.mark.parametrize(
    "return_url",
    [
        "https://xn--80akhbyknj4f.cinema.example/paid",
        "HTTPS://TV.Cinema.Example/Paid?from=tv#done",
        "https://cinema.example:8443/paid",
        "https://cinema.example",
    ],
)
def test_punycode_upper_case_ports_and_bare_hosts_of_the_cinema_are_allowed(viewer, plan, return_url):
    result = checkout(viewer, plan, return_url=return_url)

    assert result.payment.return_url == return_url


def test_an_overlong_idempotency_key_is_refused(viewer, plan):
    with pytest.raises(InvalidInput):
        checkout(viewer, plan, idempotency_key="k" * 129)

    assert_nothing_created()


@pytest.mark.parametrize("idempotency_key", ["\x00", "click\x00-1", "click\t1", "click\u200b1", "click\ud8001"])
def test_an_idempotency_key_with_control_characters_is_refused(viewer, plan, idempotency_key):
    with pytest.raises(InvalidInput) as error:
        checkout(viewer, plan, idempotency_key=idempotency_key)

    assert error.value.field == "idempotencyKey"
    assert_nothing_created()


def test_receipts_carry_the_viewers_email_and_the_vat_code(viewer, plan, sandbox, settings, sandbox_calls):
    settings.YOOKASSA_RECEIPTS = True
    settings.YOOKASSA_VAT_CODE = 4

    result = checkout(viewer, plan)

    assert result.payment.receipt_email == viewer.email
    assert result.payment.receipt_vat_code == 4
    assert sandbox.emulator.get_payment(result.payment.provider_payment_id)["receipt_registration"] == "pending"
    [create] = [call for call in sandbox_calls if call.kind == "payments.create"]
    assert create.body["receipt"]["customer"] == {"email": viewer.email}
    assert [
        (item["description"], item["vat_code"], item["amount"], item["quantity"])
        for item in create.body["receipt"]["items"]
    ] == [("Basic, 1 month", 4, {"value": "299.00", "currency": "RUB"}, "1")]


def test_receipts_need_an_email(viewer, plan, settings):
    settings.YOOKASSA_RECEIPTS = True

    with pytest.raises(EmailRequired):
        checkout(viewer, plan, viewer_email=None)

    assert_nothing_created()


def test_a_refusal_by_yookassa_ends_the_attempt(viewer, plan, sandbox, monkeypatch):
    def refuse(self, payment, *, idempotence_key):
        raise ProviderRejected("YooKassa answered 403: Forbidden to save payment method", http_status=403)

    monkeypatch.setattr("billing.gateway.yookassa.YooKassaGateway.create_payment", refuse)

    with pytest.raises(ProviderRejected) as raised:
        checkout(viewer, plan)

    result = committed(raised.value)
    assert result.payment.status == PaymentStatus.CANCELED
    assert result.payment.cancellation_reason == "rejected_by_provider"
    assert result.subscription.status == SubscriptionStatus.FAILED
