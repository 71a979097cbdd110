"""The lockout holds against guessers that rotate addresses or fill the attempts table, and a
hostile username gets the login form's error, never a 500."""

import io
import ipaddress

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.db.models import Sum
from django.db.models.functions import Length
from django.test import Client

from admin_access.addresses import client_address
from tests.admin_access.conftest import PASSWORD, is_signed_in, post_login

PAIR_LIMIT = 5
USERNAME_LIMIT = 20
ONE_64 = ipaddress.IPv6Address("2001:db8:1:2::1")


def _request(remote_addr: str):
    class Request:
        META = {"REMOTE_ADDR": remote_addr}

    return Request()


@pytest.mark.parametrize(
    ("remote_addr", "expected"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2::"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
        ("2001:db8:1:3::1", "2001:db8:1:3::"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("203.0.113.9", "203.0.113.9"),
    ],
)
def test_an_ipv6_client_counts_as_its_64(remote_addr, expected):
    assert client_address(_request(remote_addr)) == expected


@pytest.mark.django_db
def test_rotating_addresses_in_one_64_does_not_escape_the_lock(operator_user):
    # given a guesser with a new address of one /64 for every guess
    client = Client()
    statuses = [post_login(client, password=f"wrong-{n}", remote_addr=str(ONE_64 + n)).status_code for n in range(40)]

    # then the /64 is one address to the lock
    assert statuses[: PAIR_LIMIT - 1] == [200] * (PAIR_LIMIT - 1)
    assert set(statuses[PAIR_LIMIT - 1 :]) == {429}
    assert post_login(client, password=PASSWORD, remote_addr=str(ONE_64 + 999)).status_code == 429
    assert not is_signed_in(client)
    assert list(AccessAttempt.objects.values_list("ip_address", "failures_since_start")) == [
        ("2001:db8:1:2::", PAIR_LIMIT)
    ]


@pytest.mark.django_db
def test_guesses_from_many_networks_stop_at_the_username_ceiling(operator_user):
    # given a guesser with a new /64 for every guess (40 networks)
    client = Client()
    statuses = [
        post_login(client, password=f"wrong-{n}", remote_addr=str(ONE_64 + (n << 64))).status_code for n in range(40)
    ]

    # then the username takes USERNAME_LIMIT failures in all, and no more
    assert statuses[: USERNAME_LIMIT - 1] == [200] * (USERNAME_LIMIT - 1)
    assert set(statuses[USERNAME_LIMIT - 1 :]) == {429}
    refused = post_login(client, password=PASSWORD, remote_addr=str(ONE_64 + (999 << 64)))
    assert refused.status_code == 429
    assert "or 20 from all addresses together" in refused.content.decode()
    assert not is_signed_in(client)
    assert AccessAttempt.objects.aggregate(total=Sum("failures_since_start"))["total"] == USERNAME_LIMIT


@pytest.mark.django_db
def test_one_mistyping_operator_locks_only_their_own_pair(operator_user, django_user_model):
    colleague = django_user_model.objects.create_superuser("colleague", "c@cinema.example", PASSWORD)
    # given an operator locked out at their desk
    desk = Client()
    statuses = [post_login(desk, password=f"typo-{n}", remote_addr="198.51.100.20").status_code for n in range(6)]
    assert statuses[-2:] == [429, 429]

    # the same username from another address, and a colleague from that desk, still get in
    elsewhere = Client()
    assert post_login(elsewhere, password=PASSWORD, remote_addr="198.51.100.99").status_code == 302
    neighbour = Client()
    response = post_login(neighbour, username="colleague", password=PASSWORD, remote_addr="198.51.100.20")
    assert response.status_code == 302
    assert neighbour.session["_auth_user_id"] == str(colleague.pk)


@pytest.mark.django_db
def test_the_username_ceiling_is_a_setting(operator_user, settings):
    settings.ADMIN_LOGIN_USERNAME_FAILURE_LIMIT = 8
    client = Client()

    statuses = [post_login(client, password=f"w-{n}", remote_addr=f"192.0.2.{n}").status_code for n in range(10)]

    assert statuses == [200] * 7 + [429] * 3


@pytest.mark.django_db
def test_a_thousand_refused_logins_leave_a_bounded_trace(operator_user):
    # given one address posting a thousand wrong passwords, each with a kilobyte of padding
    client = Client()
    statuses = [
        post_login(client, password=f"wrong-{n}", remote_addr="203.0.113.66", pad="p" * 2000).status_code
        for n in range(1000)
    ]

    # then one row records the pair's failures up to the limit, and no form data at all
    assert statuses.count(429) == 1000 - (PAIR_LIMIT - 1)
    assert AccessAttempt.objects.count() == 1
    attempt = AccessAttempt.objects.get()
    assert attempt.failures_since_start == PAIR_LIMIT
    assert (attempt.get_data, attempt.post_data) == ("", "")
    sizes = AccessAttempt.objects.aggregate(
        text=Sum(Length("get_data") + Length("post_data") + Length("http_accept") + Length("user_agent"))
    )
    assert sizes["text"] < 2048


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.parametrize("otp_required", [False, True], ids=["password", "password-and-totp"])
@pytest.mark.parametrize("length", [151, 256, 300, 10_000])
def test_an_overlong_username_gets_the_forms_error(operator_user, settings, otp_required, length):
    settings.ADMIN_OTP_REQUIRED = otp_required
    client = Client()

    response = post_login(client, username="u" * length, password="whatever")

    assert response.status_code == 200
    assert "at most 150 characters" in response.content.decode()
    assert not AccessAttempt.objects.exists()


@pytest.mark.django_db
def test_axes_reset_username_lifts_the_username_ceiling(operator_user):
    # given a username refused from everywhere after guesses from many addresses
    client = Client()
    for n in range(USERNAME_LIMIT):
        post_login(client, password=f"wrong-{n}", remote_addr=f"192.0.2.{n}")
    assert post_login(client, password=PASSWORD, remote_addr="198.51.100.20").status_code == 429

    # when another operator unlocks it
    call_command("axes_reset_username", "operator", stdout=io.StringIO())

    # then the operator gets in
    assert post_login(client, password=PASSWORD, remote_addr="198.51.100.20").status_code == 302
    assert is_signed_in(client)


@pytest.mark.django_db
@pytest.mark.postgres
def test_a_nul_in_the_user_agent_is_counted_not_a_500(operator_user):
    # PostgreSQL's text refuses NUL; the client writes its User-Agent and Accept itself
    client = Client()
    headers = {"HTTP_USER_AGENT": "a\x00b", "HTTP_ACCEPT": "text/html\x00"}

    statuses = [post_login(client, password=f"wrong-{n}", **headers).status_code for n in range(PAIR_LIMIT + 1)]

    assert statuses == [200] * (PAIR_LIMIT - 1) + [429, 429]
    attempt = AccessAttempt.objects.get()
    assert (attempt.user_agent, attempt.failures_since_start) == ("a\ufffdb", PAIR_LIMIT)
    call_command("axes_reset", stdout=io.StringIO())
    assert post_login(client, password=PASSWORD, **headers).status_code == 302
