"""POST /webhooks/yookassa/: every notification is stored raw, its source address is checked, and
the payment is re-fetched from the API: the service acts on what the API says, never on the body.

The sandbox's own notifications are not delivered here (no notification URL is set): each test
posts the notification itself, taking the object from the sandbox or forging one.
"""

import json
import uuid
from datetime import datetime

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from billing.errors import ProviderOutcomeUnknown
from billing.models import (
    BillingEvent,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)
from sandbox.emulator import new_object_id
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import pay_on_page, start_checkout
from webhooks.models import NotificationOutcome, UntrustedNotificationTally, YooKassaNotification

WEBHOOK_URL = "/webhooks/yookassa/"
LOOPBACK = "127.0.0.1"
SUCCESS_CARD = "5555555555554444"
INSUFFICIENT_FUNDS_CARD = "5555555555554600"
RETURN_URL = "https://cinema.example/return"


# --- helpers -----------------------------------------------------------------------------------


def _post(body: dict | bytes, *, remote_addr: str = LOOPBACK, forwarded_for: str | None = None):
    """What YooKassa does; CSRF checks on, as for any client that has no cookie."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    client = Client(enforce_csrf_checks=True)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    return client.post(
        WEBHOOK_URL, data=data, content_type="application/json", REMOTE_ADDR=remote_addr, headers=headers
    )


def _notification(event: str, obj: dict) -> dict:
    return {"type": "notification", "event": event, "object": obj}


def _checkout(viewer, plan) -> Payment:
    result = start_checkout(viewer, plan)
    assert result.payment.status == PaymentStatus.PENDING
    assert result.payment.provider_payment_id
    return result.payment


def _paid(viewer, plan, *, card: str = SUCCESS_CARD) -> Payment:
    """A checkout paid on the sandbox's page; our row knows nothing of it yet."""
    payment = _checkout(viewer, plan)
    pay_on_page(payment.confirmation_url, card)
    return payment


def _api_object(sandbox, payment: Payment) -> dict:
    return sandbox.emulator.get_payment(payment.provider_payment_id)


def _deliver(sandbox, payment: Payment, event: str = "payment.succeeded", **kwargs):
    return _post(_notification(event, _api_object(sandbox, payment)), **kwargs)


def _last_notification() -> YooKassaNotification:
    return YooKassaNotification.objects.latest("id")


def _only_counted() -> UntrustedNotificationTally:
    """An untrusted notification leaves nothing in the inbox, only its source's tally of one."""
    assert not YooKassaNotification.objects.exists()
    tally = UntrustedNotificationTally.objects.get()
    assert tally.received == 1
    assert tally.over_limit == 0
    return tally


def _event_types(viewer) -> list[str]:
    return list(BillingEvent.objects.filter(viewer_id=viewer.id).order_by("id").values_list("type", flat=True))


def _billing_state(payment: Payment) -> dict:
    """Everything a notification could change about a payment and its subscription."""
    payment = Payment.objects.select_related("subscription").get(pk=payment.pk)
    subscription = payment.subscription
    return {
        "payment": (
            payment.status,
            payment.provider_payment_id,
            payment.paid_at,
            payment.cancellation_party,
            payment.cancellation_reason,
            payment.payment_method_id,
            payment.amount,
        ),
        "subscription": (
            subscription.status,
            subscription.current_period_start,
            subscription.current_period_end,
            subscription.auto_renew,
            subscription.payment_method_id,
        ),
        "methods": list(PaymentMethod.objects.values_list("provider_method_id", flat=True)),
        "events": list(BillingEvent.objects.order_by("id").values_list("type", flat=True)),
    }


def _assert_nothing_activated(payment: Payment) -> None:
    payment.refresh_from_db()
    subscription = Subscription.objects.get(pk=payment.subscription_id)
    assert payment.status == PaymentStatus.PENDING
    assert payment.paid_at is None
    assert payment.payment_method is None
    assert subscription.status == SubscriptionStatus.PENDING
    assert subscription.current_period_start is None
    assert subscription.current_period_end is None
    assert subscription.auto_renew is False
    assert not PaymentMethod.objects.exists()
    assert not BillingEvent.objects.filter(type__in=["payment.succeeded", "subscription.activated"]).exists()


# --- success and decline -------------------------------------------------------------------------


@pytest.mark.django_db
def test_success_activates_the_subscription_for_one_period_from_the_payment_time(sandbox, viewer, plan):
    payment = _paid(viewer, plan)
    api_payment = _api_object(sandbox, payment)
    body = json.dumps(_notification("payment.succeeded", api_payment)).encode()

    response = _post(body)

    assert response.status_code == 200
    paid_at = datetime.fromisoformat(api_payment["captured_at"])
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.paid_at == paid_at
    assert payment.provider_object == api_payment
    method = PaymentMethod.objects.get()
    assert method.viewer_id == viewer.id
    assert method.provider_method_id == api_payment["payment_method"]["id"]
    assert method.title == "Bank card *4444"
    assert method.card_last4 == "4444"
    assert payment.payment_method == method
    subscription = Subscription.objects.get(pk=payment.subscription_id)
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert subscription.current_period_start == paid_at
    assert subscription.current_period_end == plan.period.end_after(paid_at)
    assert subscription.payment_method == method
    assert subscription.auto_renew is True
    assert _event_types(viewer) == [
        "subscription.created",
        "payment.created",
        "payment.succeeded",
        "subscription.activated",
        "entitlements.changed",
    ]
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.detail == f"Payment {payment.id} is succeeded."
    assert notification.event == "payment.succeeded"
    assert notification.object_id == payment.provider_payment_id
    assert notification.payment == payment
    assert notification.trusted_source is True
    assert notification.remote_addr == LOOPBACK
    assert notification.raw_body == body.decode()
    assert notification.processed_at is not None


@pytest.mark.django_db
def test_success_without_a_saved_card_activates_without_auto_renewal(sandbox, viewer, plan):
    result = start_checkout(viewer, plan, save_payment_method=False)
    pay_on_page(result.payment.confirmation_url, SUCCESS_CARD)

    response = _deliver(sandbox, result.payment)

    assert response.status_code == 200
    subscription = Subscription.objects.get(pk=result.subscription.pk)
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert subscription.payment_method is None
    assert subscription.auto_renew is False
    assert not PaymentMethod.objects.exists()
    assert _last_notification().outcome == NotificationOutcome.PROCESSED


@pytest.mark.django_db
def test_decline_fails_the_payment_with_its_reason_and_leaves_no_active_subscription(sandbox, viewer, plan):
    payment = _paid(viewer, plan, card=INSUFFICIENT_FUNDS_CARD)

    response = _deliver(sandbox, payment, "payment.canceled")

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.CANCELED
    assert payment.cancellation_reason == "insufficient_funds"
    assert payment.cancellation_party == "payment_network"
    assert payment.paid_at is None
    subscription = Subscription.objects.get(pk=payment.subscription_id)
    assert subscription.status == SubscriptionStatus.FAILED
    assert subscription.current_period_end is None
    assert not Subscription.objects.filter(viewer_id=viewer.id, status=SubscriptionStatus.ACTIVE).exists()
    assert not PaymentMethod.objects.exists()
    assert _event_types(viewer) == [
        "subscription.created",
        "payment.created",
        "payment.canceled",
        "subscription.failed",
    ]
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.detail == f"Payment {payment.id} is canceled."
    assert notification.event == "payment.canceled"
    assert notification.payment == payment


# --- duplicates, late and out-of-order news --------------------------------------------------------


@pytest.mark.django_db
def test_the_same_success_delivered_again_is_a_duplicate(sandbox, viewer, plan):
    payment = _paid(viewer, plan)
    body = json.dumps(_notification("payment.succeeded", _api_object(sandbox, payment))).encode()
    assert _post(body).status_code == 200
    before = _billing_state(payment)

    response = _post(body)

    assert response.status_code == 200
    assert _billing_state(payment) == before
    assert BillingEvent.objects.filter(type="subscription.activated").count() == 1
    assert BillingEvent.objects.filter(type="payment.succeeded").count() == 1
    first, second = YooKassaNotification.objects.order_by("id")
    assert first.outcome == NotificationOutcome.PROCESSED
    assert second.outcome == NotificationOutcome.DUPLICATE
    assert second.detail == f"Payment {payment.id} is already succeeded."
    assert second.payment == payment
    assert second.raw_body == body.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event", "forged"),
    [
        (
            "payment.canceled",
            {
                "status": "canceled",
                "paid": False,
                "cancellation_details": {"party": "yoo_money", "reason": "expired_on_confirmation"},
            },
        ),
        ("payment.waiting_for_capture", {"status": "waiting_for_capture", "paid": True}),
        ("payment.succeeded", {"status": "pending", "paid": False}),
    ],
    ids=["canceled", "waiting_for_capture", "older-pending-copy"],
)
def test_late_news_about_a_payment_that_succeeded_changes_nothing(sandbox, viewer, plan, event, forged):
    payment = _paid(viewer, plan)
    api_payment = _api_object(sandbox, payment)
    assert _post(_notification("payment.succeeded", api_payment)).status_code == 200
    before = _billing_state(payment)

    response = _post(_notification(event, {**api_payment, **forged}))

    assert response.status_code == 200
    assert _billing_state(payment) == before
    assert before["payment"][0] == PaymentStatus.SUCCEEDED
    assert before["subscription"][0] == SubscriptionStatus.ACTIVE
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.DUPLICATE
    assert notification.event == event
    assert notification.payment == payment


@pytest.mark.django_db
def test_a_late_success_claim_for_a_declined_payment_changes_nothing(sandbox, viewer, plan):
    payment = _paid(viewer, plan, card=INSUFFICIENT_FUNDS_CARD)
    api_payment = _api_object(sandbox, payment)
    assert _post(_notification("payment.canceled", api_payment)).status_code == 200
    before = _billing_state(payment)
    forged = {**api_payment, "status": "succeeded", "paid": True, "captured_at": api_payment["created_at"]}

    response = _post(_notification("payment.succeeded", forged))

    assert response.status_code == 200
    assert _billing_state(payment) == before
    assert not Subscription.objects.filter(status=SubscriptionStatus.ACTIVE).exists()
    assert _last_notification().outcome == NotificationOutcome.DUPLICATE


# --- the body is never believed ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_success_claim_for_a_payment_the_api_says_is_pending_activates_nothing(sandbox, viewer, plan):
    payment = _checkout(viewer, plan)
    forged = {
        **_api_object(sandbox, payment),
        "status": "succeeded",
        "paid": True,
        "captured_at": "2025-01-01T00:00:00.000Z",
        "payment_method": {
            "type": "bank_card",
            "id": "forged-method",
            "saved": True,
            "title": "Bank card *0000",
            "card": {"last4": "0000", "expiry_month": "12", "expiry_year": "2030", "card_type": "Visa"},
        },
    }

    response = _post(_notification("payment.succeeded", forged))

    assert response.status_code == 200
    _assert_nothing_activated(payment)
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.detail == f"Payment {payment.id} is pending."
    assert notification.payment == payment


@pytest.mark.django_db
def test_the_real_success_after_a_forged_one_still_activates(sandbox, viewer, plan):
    payment = _checkout(viewer, plan)
    forged = {**_api_object(sandbox, payment), "status": "succeeded", "paid": True}
    assert _post(_notification("payment.succeeded", forged)).status_code == 200
    pay_on_page(payment.confirmation_url, SUCCESS_CARD)

    response = _deliver(sandbox, payment)

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert Subscription.objects.get(pk=payment.subscription_id).status == SubscriptionStatus.ACTIVE
    assert BillingEvent.objects.filter(type="subscription.activated").count() == 1
    assert _last_notification().outcome == NotificationOutcome.PROCESSED


@pytest.mark.django_db
def test_a_forged_amount_time_and_card_are_ignored_for_the_apis_values(sandbox, viewer, plan):
    payment = _paid(viewer, plan)
    api_payment = _api_object(sandbox, payment)
    forged = {
        **api_payment,
        "amount": {"value": "1.00", "currency": "USD"},
        "captured_at": "2020-02-29T00:00:00.000Z",
        "payment_method": {**api_payment["payment_method"], "id": "forged-method", "title": "Bank card *0000"},
        "metadata": {"payment_id": str(uuid.uuid4())},
    }

    response = _post(_notification("payment.succeeded", forged))

    assert response.status_code == 200
    paid_at = datetime.fromisoformat(api_payment["captured_at"])
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.amount == plan.price
    assert payment.currency == plan.currency
    assert payment.paid_at == paid_at
    assert payment.provider_object == api_payment
    assert payment.payment_method.provider_method_id == api_payment["payment_method"]["id"]
    assert payment.payment_method.title == "Bank card *4444"
    assert not PaymentMethod.objects.filter(provider_method_id="forged-method").exists()
    subscription = Subscription.objects.get(pk=payment.subscription_id)
    assert subscription.current_period_start == paid_at
    assert subscription.current_period_end == plan.period.end_after(paid_at)


@pytest.mark.django_db
def test_a_cancellation_claim_for_a_payment_the_api_says_succeeded_activates_it(sandbox, viewer, plan):
    payment = _paid(viewer, plan)
    api_payment = _api_object(sandbox, payment)
    forged = {
        **api_payment,
        "status": "canceled",
        "paid": False,
        "cancellation_details": {"party": "payment_network", "reason": "fraud_suspected"},
    }

    response = _post(_notification("payment.canceled", forged))

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.cancellation_reason == ""
    assert payment.paid_at == datetime.fromisoformat(api_payment["captured_at"])
    assert Subscription.objects.get(pk=payment.subscription_id).status == SubscriptionStatus.ACTIVE
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.detail == f"Payment {payment.id} is succeeded."


# --- the source address ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("remote_addr", "stored_addr", "network"),
    [
        ("8.8.8.8", "8.8.8.8", "8.8.8.8/32"),
        ("::ffff:8.8.8.8", "::ffff:8.8.8.8", "8.8.8.8/32"),
        ("2001:4860:4860::8888", "2001:4860:4860::8888", "2001:4860:4860::/64"),
        ("not-an-address", None, "unknown"),
        ("", None, "unknown"),
    ],
)
def test_a_notification_from_an_untrusted_address_is_rejected_and_counted(
    sandbox, viewer, plan, remote_addr, stored_addr, network
):
    payment = _paid(viewer, plan)
    body = json.dumps(_notification("payment.succeeded", _api_object(sandbox, payment))).encode()
    before = _billing_state(payment)

    response = _post(body, remote_addr=remote_addr)

    assert response.status_code == 403
    assert _billing_state(payment) == before
    _assert_nothing_activated(payment)
    tally = _only_counted()
    assert tally.source_network == network
    assert tally.sample_remote_addr == stored_addr
    assert tally.bytes_received == len(body)
    assert tally.sample_body == body[:1024].decode("utf-8", "replace")
    assert tally.first_seen_at == tally.last_seen_at


@pytest.mark.django_db
@pytest.mark.parametrize("remote_addr", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_is_trusted_in_sandbox_mode_also_as_an_ipv4_mapped_address(sandbox, viewer, plan, remote_addr):
    payment = _paid(viewer, plan)

    response = _deliver(sandbox, payment, remote_addr=remote_addr)

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    notification = _last_notification()
    assert notification.trusted_source is True
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.remote_addr == remote_addr


@pytest.mark.django_db
@pytest.mark.parametrize("remote_addr", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.5", "185.71.76.32"])
def test_with_only_yookassas_published_ranges_other_addresses_are_rejected(
    sandbox, viewer, plan, settings, remote_addr
):
    settings.YOOKASSA_TRUSTED_NETWORKS = settings.YOOKASSA_PUBLISHED_NETWORKS
    payment = _paid(viewer, plan)

    response = _deliver(sandbox, payment, remote_addr=remote_addr)

    assert response.status_code == 403
    _assert_nothing_activated(payment)
    _only_counted()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "remote_addr", ["185.71.76.1", "185.71.77.31", "77.75.156.11", "::ffff:185.71.76.1", "2a02:5180:0:1509::10"]
)
def test_with_only_yookassas_published_ranges_its_addresses_are_accepted(sandbox, viewer, plan, settings, remote_addr):
    settings.YOOKASSA_TRUSTED_NETWORKS = settings.YOOKASSA_PUBLISHED_NETWORKS
    payment = _paid(viewer, plan)

    response = _deliver(sandbox, payment, remote_addr=remote_addr)

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.trusted_source is True


# --- behind the service's own proxies ----------------------------------------------------------------

PROXY = "10.0.0.2"
YOOKASSA_ADDRESS = "185.71.76.1"


@pytest.fixture
def behind_a_proxy(settings):
    """Production's view: only YooKassa's ranges are trusted, and the service sits behind proxies."""
    settings.YOOKASSA_TRUSTED_NETWORKS = settings.YOOKASSA_PUBLISHED_NETWORKS
    settings.YOOKASSA_TRUSTED_PROXIES = ["10.0.0.0/24"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("forwarded_for", "source"),
    [
        (YOOKASSA_ADDRESS, YOOKASSA_ADDRESS),
        (f"{YOOKASSA_ADDRESS}, 10.0.0.7", YOOKASSA_ADDRESS),
        (f"203.0.113.9, {YOOKASSA_ADDRESS}", YOOKASSA_ADDRESS),
        (f"::ffff:{YOOKASSA_ADDRESS}", f"::ffff:{YOOKASSA_ADDRESS}"),
    ],
    ids=["one-proxy", "two-proxies", "whatever-the-sender-wrote-on-the-left", "ipv4-mapped"],
)
def test_behind_a_trusted_proxy_the_hop_that_reached_it_is_checked(
    sandbox, viewer, plan, behind_a_proxy, forwarded_for, source
):
    payment = _paid(viewer, plan)

    response = _deliver(sandbox, payment, remote_addr=PROXY, forwarded_for=forwarded_for)

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.trusted_source is True
    assert notification.remote_addr == source


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("remote_addr", "forwarded_for", "stored_addr"),
    [
        # The sender wrote YooKassa's address; the proxy appended the real one.
        (PROXY, f"{YOOKASSA_ADDRESS}, 8.8.8.8", "8.8.8.8"),
        (PROXY, f"{YOOKASSA_ADDRESS}, 8.8.8.8, 10.0.0.7", "8.8.8.8"),
        # Not from a proxy of ours: the header is the sender's own words.
        ("8.8.8.8", YOOKASSA_ADDRESS, "8.8.8.8"),
        ("10.0.1.2", YOOKASSA_ADDRESS, "10.0.1.2"),
        # A proxy of ours that says nothing, or nothing readable, about who reached it.
        (PROXY, None, PROXY),
        (PROXY, "", PROXY),
        (PROXY, f"{YOOKASSA_ADDRESS}, unknown", None),
        (PROXY, f"{YOOKASSA_ADDRESS}:443", None),
    ],
    ids=[
        "forged-left-hop",
        "forged-left-hop-two-proxies",
        "forged-header-from-an-untrusted-peer",
        "forged-header-from-a-private-peer-not-a-proxy",
        "proxy-without-header",
        "proxy-with-empty-header",
        "unreadable-hop",
        "hop-with-a-port",
    ],
)
def test_a_forwarded_address_the_sender_could_have_written_is_not_believed(
    sandbox, viewer, plan, behind_a_proxy, remote_addr, forwarded_for, stored_addr
):
    payment = _paid(viewer, plan)

    response = _deliver(sandbox, payment, remote_addr=remote_addr, forwarded_for=forwarded_for)

    assert response.status_code == 403
    _assert_nothing_activated(payment)
    assert _only_counted().sample_remote_addr == stored_addr


@pytest.mark.django_db
def test_without_trusted_proxies_x_forwarded_for_is_ignored(sandbox, viewer, plan, settings):
    settings.YOOKASSA_TRUSTED_NETWORKS = settings.YOOKASSA_PUBLISHED_NETWORKS
    payment = _paid(viewer, plan)

    response = _deliver(sandbox, payment, remote_addr="8.8.8.8", forwarded_for=YOOKASSA_ADDRESS)

    assert response.status_code == 403
    _assert_nothing_activated(payment)
    assert _only_counted().sample_remote_addr == "8.8.8.8"


# --- malformed bodies ------------------------------------------------------------------------------


def _body(**overrides) -> bytes:
    """A well-formed notification with fields replaced, or left out where the override is `...`."""
    notification = {"type": "notification", "event": "payment.succeeded", "object": {"id": new_object_id("000f")}}
    return json.dumps({key: value for key, value in (notification | overrides).items() if value is not ...}).encode()


MALFORMED_BODIES = {
    "empty": b"",
    "not-json": b"not json",
    "truncated-json": _body()[:-2],
    "not-utf8": b'{"type": "notification", "event": "payment.succeeded", "object": {"id": "\xff\xfe"}}',
    "nul-byte": b'{"type": "notification", \x00"event": "payment.succeeded"}',
    "json-array": json.dumps([json.loads(_body())]).encode(),
    "json-string": b'"notification"',
    "json-null": b"null",
    "deeply-nested": b"[" * 100_000,
    "deeply-nested-object": b'{"type": "notification", "event": "payment.succeeded", "object": ' + b"[" * 100_000,
    "missing-type": _body(type=...),
    "other-type": _body(type="refund"),
    "missing-event": _body(event=...),
    "event-not-a-string": _body(event=["payment.succeeded"]),
    "empty-event": _body(event=""),
    "overlong-event": _body(event="payment." + "x" * 57),
    "event-with-nul": _body(event="payment.succeeded\x00"),
    "missing-object": _body(object=...),
    "object-not-an-object": _body(object=[{"id": new_object_id("000f")}]),
    "object-without-id": _body(object={"status": "succeeded"}),
    "id-not-a-string": _body(object={"id": 42}),
    "empty-id": _body(object={"id": ""}),
    "overlong-id": _body(object={"id": "a" * 65}),
    "id-with-path": _body(object={"id": "../me"}),
    "id-with-query": _body(object={"id": "?limit=100"}),
    "id-with-nul": _body(object={"id": "2d9f5b3a-000f-5000-8000\x00"}),
}


@pytest.mark.django_db
@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_a_malformed_body_is_rejected_with_400_and_recorded(sandbox, body):
    response = _post(body)

    assert response.status_code == 400
    notification = YooKassaNotification.objects.get()
    assert notification.outcome == NotificationOutcome.REJECTED
    assert notification.detail == "Not a YooKassa notification."
    assert notification.trusted_source is True
    assert notification.raw_body == body.decode("utf-8", "replace").replace("\x00", "\ufffd")
    assert notification.payment is None


@pytest.mark.django_db
def test_a_malformed_body_from_an_untrusted_address_is_rejected_for_its_address(sandbox):
    response = _post(b"[" * 100_000 + b"\x00", remote_addr="8.8.8.8")

    assert response.status_code == 403
    tally = _only_counted()
    assert tally.sample_body == "[" * 1024


@pytest.mark.django_db
def test_of_a_large_body_from_an_untrusted_address_only_the_first_kib_is_kept(sandbox):
    body = b'{"type": "notification", "padding": "' + b"x" * 1_000_000 + b'"}'

    response = _post(body, remote_addr="8.8.8.8")

    assert response.status_code == 403
    tally = _only_counted()
    assert tally.sample_body == body[:1024].decode()
    assert tally.bytes_received == len(body)


@pytest.mark.django_db
def test_a_large_body_from_a_trusted_address_is_kept_whole(sandbox):
    body = b'{"type": "notification", "padding": "' + b"x" * 1_000_000 + b'"}'

    response = _post(body)

    assert response.status_code == 400
    assert YooKassaNotification.objects.get().raw_body == body.decode()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_notification_like = st.fixed_dictionaries(
    {
        "type": st.just("notification") | _json_values,
        "event": st.sampled_from(["payment.succeeded", "payment.canceled", "payout.succeeded"]) | _json_values,
        "object": st.fixed_dictionaries({"id": st.text(max_size=70) | _json_values}) | _json_values,
    }
)


@pytest.mark.django_db
@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=200)
    | _json_values.map(lambda value: json.dumps(value).encode())
    | _notification_like.map(lambda value: json.dumps(value).encode())
)
def test_no_body_makes_the_webhook_answer_500(sandbox, body):
    response = _post(body)

    assert response.status_code in (200, 400)
    notification = _last_notification()
    expected = NotificationOutcome.IGNORED if response.status_code == 200 else NotificationOutcome.REJECTED
    assert notification.outcome == expected
    assert not Payment.objects.exists()


# --- what is not ours ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("event", ["payout.succeeded", "deal.closed", "payment_method.active"])
def test_an_event_without_a_handler_is_ignored_with_200(sandbox, event):
    object_id = new_object_id("000f")

    response = _post(_notification(event, {"id": object_id, "status": "succeeded"}))

    assert response.status_code == 200
    notification = YooKassaNotification.objects.get()
    assert notification.outcome == NotificationOutcome.IGNORED
    assert notification.detail == f"No handler for {event}."
    assert notification.event == event
    assert notification.object_id == object_id
    assert notification.trusted_source is True


@pytest.mark.django_db
def test_a_payment_yookassa_does_not_know_is_ignored_with_200_and_recorded(sandbox, viewer, plan):
    payment = _checkout(viewer, plan)
    before = _billing_state(payment)
    unknown_id = new_object_id("000f")
    body = json.dumps(_notification("payment.succeeded", {"id": unknown_id, "status": "succeeded"})).encode()

    response = _post(body)

    assert response.status_code == 200
    assert _billing_state(payment) == before
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.IGNORED
    assert notification.detail == "YooKassa does not know this payment."
    assert notification.object_id == unknown_id
    assert notification.event == "payment.succeeded"
    assert notification.raw_body == body.decode()
    assert notification.payment is None


@pytest.mark.django_db
@pytest.mark.parametrize("metadata", ["none", "random-uuid", "not-a-uuid", "ours-already-linked"])
def test_a_payment_at_yookassa_that_is_not_ours_is_ignored_with_200(sandbox, viewer, plan, metadata):
    ours = _checkout(viewer, plan)
    before = _billing_state(ours)
    foreign = sandbox.emulator.create_payment(
        {
            "amount": {"value": "10.00", "currency": "RUB"},
            "capture": True,
            "confirmation": {"type": "redirect", "return_url": "https://elsewhere.example/"},
            "metadata": {
                "none": {},
                "random-uuid": {"payment_id": str(uuid.uuid4())},
                "not-a-uuid": {"payment_id": "not-a-uuid"},
                # Our payment already has its own YooKassa id: another payment cannot claim it.
                "ours-already-linked": {"payment_id": str(ours.id)},
            }[metadata],
        }
    )
    pay_on_page(foreign["confirmation"]["confirmation_url"], SUCCESS_CARD)

    response = _post(_notification("payment.succeeded", sandbox.emulator.get_payment(foreign["id"])))

    assert response.status_code == 200
    assert _billing_state(ours) == before
    assert not Payment.objects.filter(provider_payment_id=foreign["id"]).exists()
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.IGNORED
    assert notification.detail == "Not a payment of this service."
    assert notification.object_id == foreign["id"]
    assert notification.payment is None


# --- YooKassa unreachable, and a crash before our write -------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("effect", [ApiEffect.ERROR_500, ApiEffect.ERROR_429, ApiEffect.ERROR_202, ApiEffect.DROP])
def test_when_the_refetch_fails_the_notification_is_deferred_with_503(sandbox, viewer, plan, effect):
    payment = _paid(viewer, plan)
    body = json.dumps(_notification("payment.succeeded", _api_object(sandbox, payment))).encode()
    before = _billing_state(payment)
    sandbox.faults.add(ApiFault(effect, kind="payments.get", applied=False))

    response = _post(body)

    assert response.status_code == 503
    assert _billing_state(payment) == before
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.DEFERRED
    assert notification.detail.startswith("Could not re-fetch: ")
    assert notification.event == "payment.succeeded"
    assert notification.object_id == payment.provider_payment_id
    assert notification.trusted_source is True
    assert notification.raw_body == body.decode()


@pytest.mark.django_db
def test_a_deferred_notification_redelivered_after_the_outage_is_processed(sandbox, viewer, plan):
    payment = _paid(viewer, plan)
    body = json.dumps(_notification("payment.succeeded", _api_object(sandbox, payment))).encode()
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.get", applied=False))
    assert _post(body).status_code == 503

    response = _post(body)

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert Subscription.objects.get(pk=payment.subscription_id).status == SubscriptionStatus.ACTIVE
    deferred, processed = YooKassaNotification.objects.order_by("id")
    assert deferred.outcome == NotificationOutcome.DEFERRED
    assert processed.outcome == NotificationOutcome.PROCESSED
    assert processed.payment == payment


@pytest.mark.django_db
def test_a_payment_whose_creation_answer_was_lost_is_found_through_its_metadata(sandbox, viewer, plan):
    sandbox.faults.add(ApiFault(ApiEffect.DROP, kind="payments.create", applied=True))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        start_checkout(viewer, plan)
    payment = raised.value.result["payment"]
    assert payment.status == PaymentStatus.CREATING
    assert payment.provider_payment_id is None
    created = sandbox.store.recent_payments(1)[0]
    assert created["metadata"]["payment_id"] == str(payment.id)
    pay_on_page(created["confirmation"]["confirmation_url"], SUCCESS_CARD)
    api_payment = sandbox.emulator.get_payment(created["id"])

    response = _post(_notification("payment.succeeded", api_payment))

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.provider_payment_id == created["id"]
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.paid_at == datetime.fromisoformat(api_payment["captured_at"])
    subscription = Subscription.objects.get(pk=payment.subscription_id)
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert subscription.current_period_start == payment.paid_at
    assert subscription.current_period_end == plan.period.end_after(payment.paid_at)
    assert subscription.payment_method.title == "Bank card *4444"
    notification = _last_notification()
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.payment == payment
    assert sandbox.store.count_payments() == 1


# --- the endpoint ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_only_post_is_allowed(method):
    response = getattr(Client(), method)(WEBHOOK_URL, REMOTE_ADDR=LOOPBACK)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert not YooKassaNotification.objects.exists()
