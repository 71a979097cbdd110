import pytest
from django.test import Client

from internal_api.credentials import service_key_create
from internal_api.models import SCOPE_BILLING_READ, SCOPE_ENTITLEMENTS_READ


@pytest.fixture
def auth_key(db) -> str:
    """The key of an Auth service that may read entitlements and billing history."""
    return service_key_create(service="auth", scopes=[SCOPE_ENTITLEMENTS_READ, SCOPE_BILLING_READ]).key


@pytest.fixture
def api(auth_key):
    """GET/POST to the internal API as the Auth service (or with `key=`, as someone else)."""

    class Api:
        client = Client()

        def get(self, path, *, key=auth_key, **headers):
            return self.client.get(f"/internal/v1/{path}", headers=_headers(key, headers))

        def post(self, path, body, *, key=auth_key, content_type="application/json", **headers):
            return self.client.post(
                f"/internal/v1/{path}", body, content_type=content_type, headers=_headers(key, headers)
            )

    return Api()


def _headers(key, headers):
    return ({"Authorization": f"Bearer {key}"} if key else {}) | headers
