"""What a payer's browser does on the sandbox's payment page."""

import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

import requests

# YooKassa's test cards: one that pays, one that is declined for insufficient funds.
SUCCESS_CARD = "5555555555554444"
DECLINE_CARD = "5555555555554600"
# A card expiry date that stays in the future whenever the tests run (MM/YY).
FUTURE_EXPIRY = f"12/{(datetime.now(UTC).year + 2) % 100:02d}"


def pay_on_page(confirmation_url: str, card_number: str, *, expiry: str = FUTURE_EXPIRY) -> requests.Response:
    """Open the page, submit the card form (and the 3-D Secure form when asked); return the last answer."""
    page = requests.get(confirmation_url, timeout=5)
    page.raise_for_status()
    assert 'name="card_number"' in page.text
    answer = requests.post(
        confirmation_url,
        data={"card_number": card_number, "expiry": expiry, "csc": "123"},
        allow_redirects=False,
        timeout=5,
    )
    three_ds = re.search(r'<form method="post" action="(/checkout/[^"]+/3ds)"', answer.text)
    if answer.status_code == 200 and three_ds:
        base = confirmation_url.split("/checkout/")[0]
        answer = requests.post(base + three_ds[1], data={"code": "123456"}, allow_redirects=False, timeout=5)
    return answer


@dataclass(frozen=True)
class SeenAtYooKassa:
    """A create call as the sandbox received it (see the `seen_at_yookassa` fixture)."""

    kind: str
    idempotence_key: str
    # The row's status as another database session saw it then; None: it saw no such row.
    status: str | None


@dataclass(frozen=True)
class SandboxCall:
    """An API request as the sandbox received it (see the `sandbox_calls` fixture)."""

    kind: str
    body: dict | None


def eventually(check, *, timeout: float = 5.0, interval: float = 0.01):
    """Wait until `check()` returns something truthy (and return it), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {check}")
        time.sleep(interval)


def make_token(
    viewer_id,
    email: str | None = "viewer@example.com",
    *,
    expires_in: int = 3600,
    key: str | None = None,
    algorithm: str = "HS256",
    **claims,
) -> str:
    """A token as the cinema's Auth service issues it (signed with the test JWT_SECRET by default)."""
    from datetime import timedelta

    import jwt
    from django.conf import settings

    payload = {"sub": str(viewer_id), "exp": datetime.now(UTC) + timedelta(seconds=expires_in), **claims}
    if email is not None:
        payload["email"] = email
    return jwt.encode(payload, key or settings.JWT_SECRET, algorithm=algorithm)


class GraphQLClient:
    """POSTs operations to /graphql/: through Django's test client, or over HTTP to `base_url`."""

    def __init__(self, base_url: str | None = None) -> None:
        self.base_url = base_url

    def execute(self, query: str, variables: dict | None = None, *, token: str | None = None) -> dict:
        body = {"query": query, "variables": variables or {}}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if self.base_url is not None:
            response = requests.post(f"{self.base_url}/graphql/", json=body, headers=headers, timeout=30)
            assert response.status_code == 200, response.text
            return response.json()
        from django.test import Client

        response = Client().post("/graphql/", body, content_type="application/json", headers=headers)
        assert response.status_code == 200, response.content
        return response.json()


def committed(error) -> SimpleNamespace:
    """What a service committed before it raised `error` (a BillingError): its payment,
    subscription or refund, by name, as the API returns them with the error."""
    return SimpleNamespace(**error.result)


def start_checkout(viewer, plan, **overrides):
    """subscription_start_checkout as the subscribe mutation calls it, with test defaults."""
    from billing import services

    arguments = {
        "viewer_id": viewer.id,
        "viewer_email": viewer.email,
        "plan_id": plan.pk,
        "return_url": "https://cinema.example/return",
        "save_payment_method": True,
        "idempotency_key": None,
    }
    return services.subscription_start_checkout(**(arguments | overrides))


def subscribe_and_pay(viewer, plan, card: str = SUCCESS_CARD):
    """Check out `plan` and pay on the sandbox's page with `card`: the subscription as billing left it."""
    from billing import services

    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, card)
    subscription = services.payment_refresh(provider_payment_id=payment.provider_payment_id).subscription
    subscription.refresh_from_db()
    return subscription


def subscribe_and_pay_at(moment, viewer, plan, sandbox):
    """`subscribe_and_pay` at `moment`, on billing's clock and YooKassa's (the sandbox's); move both
    later with `billing_and_sandbox_at`."""
    from billing import clock
    from sandbox.config import utc_now

    sandbox.config.clock = lambda: moment
    try:
        with clock.moved_to(moment):
            subscription = subscribe_and_pay(viewer, plan)
    finally:
        sandbox.config.clock = utc_now
    assert subscription.current_period_start == moment
    return subscription


@contextmanager
def billing_and_sandbox_at(moment, sandbox):
    """Billing's clock and YooKassa's (the sandbox's) both at `moment`, ticking on from there. The
    sandbox answers from threads of its own, which billing's moved clock (a context variable) does
    not reach: it is handed the moment explicitly."""
    from billing import clock

    moved_by = moment - clock.real_now()
    previous = sandbox.config.clock
    sandbox.config.clock = lambda: clock.real_now() + moved_by
    try:
        with clock.moved_to(moment):
            yield
    finally:
        sandbox.config.clock = previous
