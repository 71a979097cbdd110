import pytest
from django.test import Client

OPERATOR = "operator"
PASSWORD = "Vq8-marmalade-Ostrich"


@pytest.fixture
def operator_user(django_user_model):
    return django_user_model.objects.create_superuser(OPERATOR, "operator@cinema.example", PASSWORD)


@pytest.fixture
def browser() -> Client:
    """A browser on the admin's login page, with CSRF checks on as in production."""
    return Client(enforce_csrf_checks=True)


def post_login(client: Client, *, username: str = OPERATOR, password: str, remote_addr: str = "203.0.113.7", **extra):
    """What an operator's browser sends: the login page first (for the CSRF cookie), then the form."""
    client.get("/admin/login/", REMOTE_ADDR=remote_addr, **extra)
    data = {"username": username, "password": password, "next": "/admin/"}
    data |= {key: value for key, value in extra.items() if not key.isupper()}
    headers = {key: value for key, value in extra.items() if key.isupper()}
    data["csrfmiddlewaretoken"] = client.cookies["csrftoken"].value
    return client.post("/admin/login/", data, REMOTE_ADDR=remote_addr, **headers)


def is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session
