"""The admin's login locks a username out from an address after ADMIN_LOGIN_FAILURE_LIMIT failures
(django-axes, ORM handler): for the cool-off, or until an operator runs axes_reset."""

import datetime
import io

import pytest
from asgiref.sync import async_to_sync
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import AsyncClient, Client

from admin_access.addresses import client_address
from tests.admin_access.conftest import OPERATOR, PASSWORD, is_signed_in, post_login

ATTACKER = "203.0.113.66"
OPERATORS_DESK = "198.51.100.20"
LIMIT = 5


def _fail(client: Client, times: int, *, remote_addr: str = ATTACKER, username: str = OPERATOR, **extra) -> list[int]:
    return [
        post_login(client, username=username, password=f"wrong-{n}", remote_addr=remote_addr, **extra).status_code
        for n in range(times)
    ]


def test_the_defaults_suit_an_operators_console():
    assert settings.AXES_FAILURE_LIMIT == LIMIT
    assert settings.AXES_COOLOFF_TIME == 0.25  # hours: 15 minutes
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_ENABLED
    assert settings.AXES_HANDLER == "admin_access.handler.AdminLoginHandler"
    assert settings.ADMIN_LOGIN_USERNAME_FAILURE_LIMIT == 20
    assert settings.AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT is False


@pytest.mark.django_db
def test_after_the_limit_the_right_password_is_refused_too(operator_user, browser):
    # given four wrong passwords, each answered by the login form
    assert _fail(browser, LIMIT - 1) == [200] * (LIMIT - 1)

    # when the fifth is wrong too
    fifth = post_login(browser, password="wrong-again", remote_addr=ATTACKER)

    # then the lockout page answers, and from then on the right password gets it as well
    assert fifth.status_code == 429
    right = post_login(browser, password=PASSWORD, remote_addr=ATTACKER)
    assert right.status_code == 429
    assert right["Retry-After"] == "900"
    page = right.content.decode()
    assert "Cinema billing" in page  # the admin's own header (config/urls.py)
    assert "Try again in 15 minutes" in page
    assert "axes_reset_username" in page
    assert "<script>" not in page  # nothing inline: the admin's CSP allows no inline script
    assert not is_signed_in(browser)
    operator_user.refresh_from_db()
    assert operator_user.last_login is None
    assert browser.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_the_lock_holds_for_that_username_from_that_address_only(operator_user, django_user_model, browser):
    colleague = django_user_model.objects.create_superuser("colleague", "c@cinema.example", PASSWORD)
    _fail(browser, LIMIT)

    # the operator at their own desk still gets in
    at_desk = Client()
    assert post_login(at_desk, password=PASSWORD, remote_addr=OPERATORS_DESK).status_code == 302
    assert is_signed_in(at_desk)
    # and so does a colleague from the attacker's very address
    neighbour = Client()
    assert post_login(neighbour, username="colleague", password=PASSWORD, remote_addr=ATTACKER).status_code == 302
    assert neighbour.session["_auth_user_id"] == str(colleague.pk)


@pytest.mark.django_db
def test_the_lock_lifts_after_the_cool_off(operator_user, browser):
    _fail(browser, LIMIT)
    assert post_login(browser, password=PASSWORD, remote_addr=ATTACKER).status_code == 429

    # when the last failure is sixteen minutes old (the cool-off is fifteen)
    AccessAttempt.objects.update(attempt_time=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=16))

    # then the right password gets in
    assert post_login(browser, password=PASSWORD, remote_addr=ATTACKER).status_code == 302
    assert is_signed_in(browser)


@pytest.mark.django_db
def test_failures_during_the_lock_are_not_recorded_and_do_not_extend_it(operator_user, browser):
    _fail(browser, LIMIT)
    fourteen_minutes_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=14)
    AccessAttempt.objects.update(attempt_time=fourteen_minutes_ago)

    # further guesses one minute before the lock would lift are refused
    assert _fail(browser, 3) == [429] * 3
    page = post_login(browser, password="one-more", remote_addr=ATTACKER).content.decode()
    assert "attempts during the lock are not counted" in page

    # and change nothing: the lock lifts when it would have
    attempt = AccessAttempt.objects.get()
    assert (attempt.failures_since_start, attempt.attempt_time) == (LIMIT, fourteen_minutes_ago)
    AccessAttempt.objects.update(attempt_time=fourteen_minutes_ago - datetime.timedelta(minutes=2))
    assert post_login(browser, password=PASSWORD, remote_addr=ATTACKER).status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize(
    "reset",
    [
        ("axes_reset_username", OPERATOR),
        ("axes_reset_ip_username", ATTACKER, OPERATOR),
        ("axes_reset_ip", ATTACKER),
        ("axes_reset",),
    ],
)
def test_axes_reset_unlocks_an_operator(operator_user, browser, reset):
    _fail(browser, LIMIT)
    assert post_login(browser, password=PASSWORD, remote_addr=ATTACKER).status_code == 429

    call_command(*reset, stdout=io.StringIO())

    assert post_login(browser, password=PASSWORD, remote_addr=ATTACKER).status_code == 302
    assert is_signed_in(browser)


@pytest.mark.django_db
def test_a_success_clears_the_count(operator_user, browser):
    # given an operator who mistyped four times, then got it right
    _fail(browser, LIMIT - 1)
    assert post_login(browser, password=PASSWORD, remote_addr=ATTACKER).status_code == 302
    browser.post("/admin/logout/", {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value}, REMOTE_ADDR=ATTACKER)

    # four more mistakes do not lock them out
    assert _fail(browser, LIMIT - 1) == [200] * (LIMIT - 1)
    assert post_login(browser, password=PASSWORD, remote_addr=ATTACKER).status_code == 302


@pytest.mark.django_db
def test_the_lockout_page_is_served_on_the_asgi_path_too(operator_user):
    # daphne runs the middleware chain async, where axes passes its arguments differently
    client = AsyncClient()
    post = async_to_sync(client.post)
    for n in range(LIMIT):
        post("/admin/login/", {"username": OPERATOR, "password": f"wrong-{n}"}, REMOTE_ADDR=ATTACKER)

    response = post("/admin/login/", {"username": OPERATOR, "password": PASSWORD}, REMOTE_ADDR=ATTACKER)

    assert response.status_code == 429
    assert "Try again in 15 minutes" in response.content.decode()
    assert response["Retry-After"] == "900"


@pytest.mark.django_db
def test_a_forged_x_forwarded_for_does_not_escape_the_lock(operator_user, browser):
    # without trusted proxies (the default) the header is nobody's word
    statuses = _fail(browser, LIMIT + 3, HTTP_X_FORWARDED_FOR="192.0.2.1")
    statuses += [
        post_login(
            browser, password=f"guess-{n}", remote_addr=ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}"
        ).status_code
        for n in range(2, 6)
    ]

    assert statuses[: LIMIT - 1] == [200] * (LIMIT - 1)
    assert set(statuses[LIMIT - 1 :]) == {429}
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}


PROXY = "10.0.0.5"


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_lock_follows_the_address_the_proxy_saw(operator_user, settings):
    settings.ADMIN_TRUSTED_PROXIES = ["10.0.0.0/24"]
    attacker, operator = Client(), Client()

    # the attacker's guesses arrive through the proxy, each with a different forged left part
    statuses = [
        post_login(
            attacker, password=f"wrong-{n}", remote_addr=PROXY, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {ATTACKER}"
        ).status_code
        for n in range(LIMIT + 1)
    ]

    assert statuses[-2:] == [429, 429]
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    # while the operator, through the same proxy from their desk, gets in
    response = post_login(operator, password=PASSWORD, remote_addr=PROXY, HTTP_X_FORWARDED_FOR=OPERATORS_DESK)
    assert response.status_code == 302


def _request(remote_addr: str | None, forwarded_for: str | None = None):
    class Request:
        META = {"REMOTE_ADDR": remote_addr} | ({"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for else {})

    return Request()


@pytest.mark.parametrize(
    ("remote_addr", "forwarded_for", "expected"),
    [
        (ATTACKER, "192.0.2.1", ATTACKER),  # not from a proxy: the header is ignored
        (PROXY, None, PROXY),
        (PROXY, ATTACKER, ATTACKER),
        (PROXY, f"192.0.2.1, {ATTACKER}", ATTACKER),  # the left part is the client's own writing
        (PROXY, f"{ATTACKER}, 10.0.0.9", ATTACKER),  # a second proxy of ours appended the first
        (PROXY, "not-an-address", PROXY),
        (PROXY, f"{ATTACKER}, not-an-address, 10.0.0.9", "10.0.0.9"),  # the last hop a proxy vouched for
        (PROXY, "2001:db8:1:2::77", "2001:db8:1:2::"),  # an IPv6 client as its /64
        (PROXY, "fe80::1%eth0", "fe80::"),
        (PROXY, f"::ffff:{ATTACKER}", ATTACKER),
    ],
)
def test_client_address(settings, remote_addr, forwarded_for, expected):
    settings.ADMIN_TRUSTED_PROXIES = ["10.0.0.0/24"]

    assert client_address(_request(remote_addr, forwarded_for)) == expected
