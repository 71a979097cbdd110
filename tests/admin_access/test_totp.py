"""ADMIN_OTP_REQUIRED: the admin asks operators for a TOTP token after the password (django-otp)."""

import base64
import io
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.admin_access.conftest import OPERATOR, PASSWORD, is_signed_in, post_login


def _enrol(username: str = OPERATOR, *args: str) -> str:
    out = io.StringIO()
    call_command("enrol_admin_totp", username, *args, stdout=out)
    return out.getvalue().strip()


def _token(uri: str, *, steps_ahead: int = 0) -> str:
    """What the operator's authenticator app shows for the otpauth:// URI it was given."""
    query = parse_qs(urlsplit(uri).query)
    key = base64.b32decode(query["secret"][0] + "=" * (-len(query["secret"][0]) % 8))
    step = int(query["period"][0])
    return f"{totp(key, step=step, digits=int(query['digits'][0]), drift=steps_ahead):06d}"


def _sign_in(client: Client, uri: str, *, steps_ahead: int = 0):
    """The two steps of django-otp's admin login: the password shows the operator's devices; then
    the device and the token from the authenticator app."""
    first = post_login(client, password=PASSWORD)
    assert first.status_code == 200
    device = TOTPDevice.objects.get(user__username=OPERATOR)
    assert f'value="{device.persistent_id}"' in first.content.decode()
    return post_login(
        client, password=PASSWORD, otp_device=device.persistent_id, otp_token=_token(uri, steps_ahead=steps_ahead)
    )


@pytest.fixture
def otp_required(settings):
    settings.ADMIN_OTP_REQUIRED = True


@pytest.mark.django_db
def test_enrolment_prints_an_otpauth_uri_for_the_operator(operator_user):
    uri = _enrol()

    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert unquote(parts.path) == "/Cinema billing:operator"
    query = parse_qs(parts.query)
    assert query["issuer"] == ["Cinema billing"]
    assert (query["digits"], query["period"], query["algorithm"]) == (["6"], ["30"], ["SHA1"])
    device = TOTPDevice.objects.get(user=operator_user)
    assert device.confirmed
    assert device.name == "authenticator"
    assert base64.b32decode(query["secret"][0] + "=" * (-len(query["secret"][0]) % 8)) == device.bin_key


@pytest.mark.django_db(transaction=True)
def test_with_otp_required_a_password_alone_does_not_get_in(otp_required, operator_user, browser):
    _enrol()

    response = post_login(browser, password=PASSWORD)

    assert response.status_code == 200
    assert "OTP Token" in response.content.decode()
    assert "Cinema billing" in response.content.decode()
    assert not is_signed_in(browser)
    assert browser.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_with_otp_required_a_wrong_token_does_not_get_in(otp_required, operator_user, browser):
    uri = _enrol()

    response = _sign_in(browser, uri, steps_ahead=10)

    assert response.status_code == 200
    assert "Invalid token" in response.content.decode()
    assert not is_signed_in(browser)


@pytest.mark.django_db
def test_with_otp_required_the_password_and_a_valid_token_get_in(otp_required, operator_user, browser):
    uri = _enrol()

    response = _sign_in(browser, uri)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_with_otp_required_a_token_works_once(otp_required, operator_user, browser):
    uri = _enrol()
    assert _sign_in(browser, uri).status_code == 302

    replay = Client(enforce_csrf_checks=True)
    assert _sign_in(replay, uri).status_code == 200
    assert not is_signed_in(replay)


@pytest.mark.django_db
def test_with_otp_required_an_operator_without_a_device_cannot_get_in(otp_required, operator_user, browser):
    first = post_login(browser, password=PASSWORD)
    response = post_login(browser, password=PASSWORD, otp_token="123456")

    assert first.status_code == response.status_code == 200
    assert "otp_totp.totpdevice/" not in first.content.decode()  # no device to offer
    assert not is_signed_in(browser)


@pytest.mark.django_db
def test_turning_otp_on_shuts_out_sessions_signed_in_by_password_alone(operator_user, settings):
    client = Client()
    client.force_login(operator_user)
    assert client.get("/admin/").status_code == 200

    settings.ADMIN_OTP_REQUIRED = True

    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_with_otp_off_a_password_gets_in_as_before(operator_user, browser):
    _enrol()  # a device changes nothing while the setting is off

    response = post_login(browser, password=PASSWORD)

    assert response.status_code == 302
    assert browser.get("/admin/").status_code == 200
    assert "OTP" not in browser.get("/admin/login/").content.decode()


@pytest.mark.django_db
def test_enrolment_refuses_unknown_and_non_staff_users(django_user_model):
    django_user_model.objects.create_user("viewer", password=PASSWORD)

    with pytest.raises(CommandError, match="No user 'nobody'"):
        _enrol("nobody")
    with pytest.raises(CommandError, match="not staff"):
        _enrol("viewer")
    assert not TOTPDevice.objects.exists()


@pytest.mark.django_db
def test_enrolling_again_needs_replace_which_retires_the_old_secret(otp_required, operator_user, browser):
    old = _enrol()

    with pytest.raises(CommandError, match="--replace"):
        _enrol(OPERATOR)
    new = _enrol(OPERATOR, "--replace")

    assert new != old
    assert TOTPDevice.objects.filter(user=operator_user).count() == 1
    assert _sign_in(browser, new).status_code == 302
    # (in this order: a failed token makes django-otp refuse the device's next try for a while)
    assert _sign_in(Client(enforce_csrf_checks=True), old).status_code == 200
