"""Operators' passwords meet Django's four validators, 12 characters at least, wherever they are set."""

import io
from unittest import mock

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from tests.admin_access.conftest import PASSWORD

WEAK = ["a", "123", "password", "12345678901234", "operator-cinema", "short-Pass1"]


@pytest.mark.django_db
@pytest.mark.parametrize("weak", WEAK)
def test_weak_passwords_are_refused(django_user_model, weak):
    user = django_user_model(username="operator-cinema", email="operator@cinema.example")

    with pytest.raises(ValidationError):
        validate_password(weak, user)


@pytest.mark.django_db
def test_a_long_uncommon_password_passes(django_user_model):
    user = django_user_model(username="operator", email="operator@cinema.example")

    assert validate_password(PASSWORD, user) is None


@pytest.mark.django_db
def test_the_admins_password_form_refuses_a_weak_password_and_changes_nothing(operator_user, django_user_model, client):
    # given an operator changing a colleague's password in the admin
    colleague = django_user_model.objects.create_user("colleague", password=PASSWORD, is_staff=True)
    client.force_login(operator_user)
    url = f"/admin/auth/user/{colleague.pk}/password/"

    # when the new password is "password"
    response = client.post(url, {"password1": "password", "password2": "password", "usable_password": "true"})

    # then the form says why and the old password still works
    assert response.status_code == 200
    assert "This password is too common." in response.content.decode()
    colleague.refresh_from_db()
    assert colleague.check_password(PASSWORD)

    # and a good one is taken
    good = "Another-long-Passphrase-77"
    response = client.post(url, {"password1": good, "password2": good, "usable_password": "true"})
    assert response.status_code == 302
    colleague.refresh_from_db()
    assert colleague.check_password(good)


@pytest.mark.django_db
def test_changepassword_refuses_weak_passwords(django_user_model):
    user = django_user_model.objects.create_user("colleague", password=PASSWORD, is_staff=True)

    # the operator at the terminal types "123" three times (getpass is the terminal)
    with (
        mock.patch("django.contrib.auth.management.commands.changepassword.getpass.getpass", return_value="123"),
        pytest.raises(CommandError, match="Aborting password change"),
    ):
        call_command("changepassword", "colleague", stdout=mock.Mock())

    user.refresh_from_db()
    assert user.check_password(PASSWORD)


class _Terminal:
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db
def test_createsuperuser_asks_again_until_the_password_is_good_enough(django_user_model):
    # the operator types "password", refuses to bypass the validation, then types a good one
    answers = iter(["password", "password", PASSWORD, PASSWORD])
    with (
        mock.patch(
            "django.contrib.auth.management.commands.createsuperuser.getpass.getpass",
            side_effect=lambda *args: next(answers),
        ),
        mock.patch("builtins.input", side_effect=lambda prompt="": {"Bypass": "n"}.get(prompt.split()[0], "")),
    ):
        errors = io.StringIO()
        call_command(
            "createsuperuser",
            username="root-operator",
            email="root@cinema.example",
            interactive=True,
            stdin=_Terminal(),
            stdout=io.StringIO(),
            stderr=errors,
        )

    assert "This password is too common." in errors.getvalue()
    user = django_user_model.objects.get(username="root-operator")
    assert user.check_password(PASSWORD)
    assert not user.check_password("password")
