"""The internal API: the cinema's services read entitlements and billing history with their own keys."""

import json
import uuid
from datetime import timedelta

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate

from billing import services
from internal_api.credentials import service_key_create
from internal_api.models import SCOPE_BILLING_READ, SCOPE_ENTITLEMENTS_READ, ServiceCredential
from tests.fuzzing import FUZZ, any_json, encoded, hostile_texts
from tests.helpers import DECLINE_CARD, make_token, subscribe_and_pay
from tests.internal_api.openapi import SPEC_PATH, assert_matches_spec

pytestmark = pytest.mark.django_db

ENTITLEMENTS = "/viewers/{viewer_id}/entitlements"
BATCH = "/entitlements:batch"


def test_the_openapi_document_is_valid_openapi_3_1():
    validate(yaml.safe_load(SPEC_PATH.read_text()))


# --- who may call ----------------------------------------------------------------------------------


def test_a_viewers_token_is_refused(api, viewer):
    response = api.get(f"viewers/{viewer.id}/entitlements", key=make_token(viewer.id))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "VIEWER_TOKEN"
    assert_matches_spec(response, ENTITLEMENTS, "get")


@pytest.mark.parametrize(
    "key",
    [None, "", "bsk_", "bsk_00000000_" + "A" * 43, "not-a-key", "Basic dXNlcjpwYXNz"],
    ids=["none", "empty", "prefix only", "unknown", "garbage", "basic"],
)
def test_no_key_or_an_unknown_one_is_refused(api, key):
    response = api.get(f"viewers/{uuid.uuid4()}/entitlements", key=key)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_known_prefix_with_another_secret_is_refused(api, auth_key):
    forged = auth_key[:13] + ("A" if auth_key[13] != "A" else "B") + auth_key[14:]

    assert api.get(f"viewers/{uuid.uuid4()}/entitlements", key=forged).status_code == 401


def test_a_revoked_key_is_refused_at_once(api, auth_key):
    # given a key that works
    path = f"viewers/{uuid.uuid4()}/entitlements"
    assert api.get(path).status_code == 200

    # when it is revoked
    call_command("service_key_revoke", auth_key[4:12])

    # then it is refused
    response = api.get(path)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_an_expired_key_is_refused(api):
    created = service_key_create(service="auth", scopes=[SCOPE_ENTITLEMENTS_READ], expires_in_days=1)
    ServiceCredential.objects.filter(pk=created.credential.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api.get(f"viewers/{uuid.uuid4()}/entitlements", key=created.key)

    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_a_key_without_the_scope_is_forbidden(api):
    support = service_key_create(service="support", scopes=[SCOPE_BILLING_READ]).key
    viewer_id = uuid.uuid4()

    assert api.get(f"viewers/{viewer_id}/entitlements", key=support).status_code == 403
    assert api.post("entitlements:batch", {"viewer_ids": []}, key=support).status_code == 403
    assert api.get(f"viewers/{viewer_id}/payments", key=support).status_code == 200


def test_two_keys_of_one_service_work_at_once_while_it_rotates(api, auth_key):
    # given a second key for Auth
    new_key = service_key_create(service="auth", scopes=[SCOPE_ENTITLEMENTS_READ]).key
    path = f"viewers/{uuid.uuid4()}/entitlements"

    # then both work until the old one is revoked
    assert api.get(path, key=auth_key).status_code == 200
    assert api.get(path, key=new_key).status_code == 200
    call_command("service_key_revoke", auth_key[4:12])
    assert api.get(path, key=auth_key).status_code == 401
    assert api.get(path, key=new_key).status_code == 200


def test_the_create_command_prints_the_key_once_and_stores_only_its_hash(capsys):
    call_command("service_key_create", "--service", "auth", "--scopes", "entitlements:read", "--expires-in-days", "90")

    key = capsys.readouterr().out.strip()
    credential = ServiceCredential.objects.get()
    assert key.startswith(f"bsk_{credential.prefix}_")
    assert key not in json.dumps([credential.key_hash, credential.prefix, credential.scopes])
    assert credential.scopes == ["entitlements:read"]
    assert credential.expires_at > timezone.now() + timedelta(days=89)


def test_last_use_is_written_at_most_once_a_minute(api, auth_key, django_assert_num_queries):
    path = f"viewers/{uuid.uuid4()}/entitlements"
    api.get(path)
    first = ServiceCredential.objects.get().last_used_at

    # the key lookup and the entitlements: no write
    with django_assert_num_queries(2):
        api.get(path)

    assert ServiceCredential.objects.get().last_used_at == first


# --- entitlements ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("sandbox")
def test_a_paying_viewers_entitlements_with_version_and_etag(api, viewer, plans):
    # given a viewer who paid for Premium
    subscription = subscribe_and_pay(viewer, plans["premium-monthly"])

    # when Auth asks
    response = api.get(f"viewers/{viewer.id}/entitlements")

    # then it gets them, at version 1, with a strong ETag
    assert response.status_code == 200
    assert_matches_spec(response, ENTITLEMENTS, "get")
    body = response.json()
    assert body["version"] == 1
    assert body["entitlements"] == [
        {
            "plan": "premium-monthly",
            "status": "active",
            "valid_until": subscription.current_period_end.isoformat(),
            "auto_renew": True,
            "features": ["hd", "4k", "offline"],
        }
    ]
    assert response["ETag"] == body["etag"] == f'"{viewer.id}.1"'


@pytest.mark.usefixtures("sandbox")
def test_if_none_match_gets_304_until_the_version_changes(api, viewer, active):
    etag = api.get(f"viewers/{viewer.id}/entitlements")["ETag"]

    unchanged = api.get(f"viewers/{viewer.id}/entitlements", **{"If-None-Match": etag})
    services.subscription_set_auto_renew(viewer_id=viewer.id, subscription_id=active.pk, enabled=False)
    changed = api.get(f"viewers/{viewer.id}/entitlements", **{"If-None-Match": etag})

    assert unchanged.status_code == 304
    assert unchanged["ETag"] == etag
    assert changed.status_code == 200
    assert changed.json()["version"] == 2


def test_an_unknown_viewer_has_nothing_at_version_0_not_a_404(api):
    viewer_id = uuid.uuid4()

    response = api.get(f"viewers/{viewer_id}/entitlements")

    assert response.status_code == 200
    assert response.json() == {
        "viewer_id": str(viewer_id),
        "version": 0,
        "etag": f'"{viewer_id}.0"',
        "entitlements": [],
    }


@pytest.mark.usefixtures("sandbox")
def test_a_batch_of_a_thousand_viewers_costs_as_many_queries_as_one(api, viewer, active, django_assert_num_queries):
    # given one paying viewer and 999 others, and a key already used this minute
    others = [str(uuid.uuid4()) for _ in range(999)]
    api.post("entitlements:batch", {"viewer_ids": []})

    # when both batches are asked for: the key's lookup and one read of the entitlements
    with django_assert_num_queries(2):
        one = api.post("entitlements:batch", {"viewer_ids": [str(viewer.id)]})
    with django_assert_num_queries(2):
        many = api.post("entitlements:batch", {"viewer_ids": [str(viewer.id), *others]})

    # then every viewer is answered, in the order asked
    assert one.status_code == many.status_code == 200
    assert_matches_spec(many, BATCH, "post")
    answered = many.json()["viewers"]
    assert [item["viewer_id"] for item in answered] == [str(viewer.id), *others]
    assert answered[0] == one.json()["viewers"][0]
    assert answered[0]["version"] == 1
    assert all(item["version"] == 0 and item["entitlements"] == [] for item in answered[1:])


def test_a_viewer_asked_twice_in_a_batch_is_answered_once(api):
    viewer_id = str(uuid.uuid4())

    response = api.post("entitlements:batch", {"viewer_ids": [viewer_id, viewer_id.upper()]})

    assert [item["viewer_id"] for item in response.json()["viewers"]] == [viewer_id]


# --- support tools ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("sandbox")
def test_subscriptions_and_payments_page_newest_first_with_a_cursor(api, viewer, plan):
    # given a first subscription whose payment was declined, then one that was paid
    failed = subscribe_and_pay(viewer, plan, card=DECLINE_CARD)
    paid = subscribe_and_pay(viewer, plan)

    # when support pages through them one at a time
    pages = {}
    for listing in ("subscriptions", "payments"):
        first = api.get(f"viewers/{viewer.id}/{listing}?limit=1")
        second = api.get(f"viewers/{viewer.id}/{listing}?limit=1&cursor={first.json()['next_cursor']}")
        for response in (first, second):
            assert response.status_code == 200
            assert_matches_spec(response, f"/viewers/{{viewer_id}}/{listing}", "get")
        assert second.json()["next_cursor"] is None
        pages[listing] = [first.json()["items"], second.json()["items"]]

    # then the newest comes first and nothing is skipped or repeated
    assert [page[0]["id"] for page in pages["subscriptions"]] == [str(paid.pk), str(failed.pk)]
    assert [page[0]["status"] for page in pages["payments"]] == ["succeeded", "canceled"]


def test_another_viewers_history_is_empty_not_a_404(api):
    response = api.get(f"viewers/{uuid.uuid4()}/payments")

    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "viewers/not-a-uuid/entitlements", None, 400),
        ("get", "viewers/%00/payments", None, 400),
        ("get", f"viewers/{uuid.uuid4()}/payments?limit=0", None, 400),
        ("get", f"viewers/{uuid.uuid4()}/payments?limit=101", None, 400),
        ("get", f"viewers/{uuid.uuid4()}/payments?limit=ten", None, 400),
        ("get", f"viewers/{uuid.uuid4()}/payments?cursor=garbage", None, 400),
        ("get", f"viewers/{uuid.uuid4()}/subscriptions?cursor=WyJ4IiwgInkiXQ", None, 400),
        ("post", "entitlements:batch", "{not json", 400),
        ("post", "entitlements:batch", json.dumps({"viewer_ids": "x"}), 400),
        ("post", "entitlements:batch", json.dumps({"viewer_ids": [1]}), 400),
        ("post", "entitlements:batch", json.dumps({"viewer_ids": ["nope"]}), 400),
        ("post", "entitlements:batch", json.dumps([]), 400),
        ("post", "entitlements:batch", json.dumps({"viewer_ids": [str(uuid.uuid4()) for _ in range(1001)]}), 400),
        ("post", "entitlements:batch", "[" * 100_000, 400),
        ("post", f"viewers/{uuid.uuid4()}/entitlements", "{}", 405),
        ("get", "entitlements:batch", None, 405),
    ],
)
def test_bad_input_is_a_clear_4xx(api, method, path, body, status):
    response = api.get(path) if method == "get" else api.post(path, body)

    assert response.status_code == status
    assert response.json()["error"]["message"]


@FUZZ
@given(body=any_json)
def test_any_batch_body_gets_200_or_400_never_500(api, body):
    response = api.post("entitlements:batch", encoded(body))

    assert response.status_code in (200, 400)


@FUZZ
@given(viewer_id=hostile_texts, cursor=hostile_texts, limit=hostile_texts)
def test_any_path_or_query_gets_200_or_a_4xx_never_500(api, viewer_id, cursor, limit):
    from urllib.parse import quote, urlencode

    query = urlencode({"cursor": cursor, "limit": limit}, encoding="utf-8", errors="surrogatepass")
    response = api.get(f"viewers/{quote(viewer_id, safe='', errors='surrogatepass')}/payments?{query}")

    assert response.status_code in (200, 400, 404)


@given(ids=st.lists(st.uuids().map(str), max_size=3))
@FUZZ
def test_a_batch_answers_every_distinct_id(api, ids):
    response = api.post("entitlements:batch", {"viewer_ids": ids})

    assert [item["viewer_id"] for item in response.json()["viewers"]] == list(dict.fromkeys(ids))


@pytest.mark.parametrize(
    "decoded",
    [
        ["2024-01-01T00:00:00+00:00", 5],
        ["2024-01-01T00:00:00+00:00", ["a"]],
        [5, "00000000-0000-0000-0000-000000000000"],
        ["0001-01-01T00:00:00+14:00", "00000000-0000-0000-0000-000000000000"],
        ["9999-12-31T23:59:59-14:00", "00000000-0000-0000-0000-000000000000"],
    ],
)
def test_a_crafted_cursor_is_a_400(api, decoded):
    # given a cursor that decodes as JSON but was never issued by the API
    import base64
    import json

    cursor = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")

    # when a service pages with it
    response = api.get(f"viewers/{uuid.uuid4()}/payments?cursor={cursor}")

    # then it is told the cursor is bad, never a 500
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_CURSOR"
