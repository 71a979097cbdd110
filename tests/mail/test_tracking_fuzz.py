"""Hypothesis throws arbitrary bodies at Mailgun's tracking webhook, unsigned and correctly signed:
whatever comes in, the answer is 200, 400 or 406, never a 500 (strategies in tests/fuzzing.py)."""

import json
import time

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from mail.models import MailgunWebhookToken
from tests.fuzzing import FUZZ, any_json, content_types, encoded, json_object, json_texts
from tests.mail.test_tracking import MESSAGE_ID, SIGNING_KEY, TRACKING_URL, signature_block

pytestmark = pytest.mark.django_db


@pytest.fixture
def tracking(settings):
    settings.MAILGUN_WEBHOOK_SIGNING_KEY = SIGNING_KEY
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}


def _answer(body: bytes, content_type: str = "application/json") -> int:
    response = Client(raise_request_exception=False).generic("POST", TRACKING_URL, body, content_type=content_type)
    return response.status_code


@pytest.mark.usefixtures("tracking")
@FUZZ
@given(
    body=st.one_of(st.binary(max_size=500), any_json.map(encoded)),
    content_type=content_types,
)
def test_no_body_gets_a_500(body, content_type):
    assert _answer(body, content_type) in {400, 406}


# Signed bodies: odd values where Mailgun puts its fields, so that they get past the signature.
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from([1e20, -1e20, 10**400, "nan", "²", "1e20", 253_402_300_800]),
    st.lists(st.text(max_size=5), max_size=2),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
event_data = st.fixed_dictionaries(
    {},
    optional={
        "event": st.one_of(st.sampled_from(["delivered", "failed", "complained", "rejected", "opened"]), values),
        "timestamp": st.one_of(st.floats(min_value=0, max_value=4e9), values),
        "severity": st.one_of(st.sampled_from(["permanent", "temporary"]), values),
        "reason": values,
        "recipient": values,
        "message": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"headers": st.fixed_dictionaries({}, optional={"message-id": values, "to": values})}
            ),
            values,
        ),
        "user-variables": st.one_of(st.fixed_dictionaries({"email_id": values}), values),
        "delivery-status": st.one_of(
            st.fixed_dictionaries({}, optional={"description": values, "message": values}), values
        ),
        "reject": values,
        "client-info": values,
        "tags": values,
    },
)
timestamps = st.one_of(
    st.just("now"),
    st.integers(min_value=-400, max_value=400).map(lambda offset: str(int(time.time()) + offset)),
    st.text(max_size=12),
    st.sampled_from(["\uff11\uff12", "1e20", "nan", "99999999999999999999"]),
)
tokens = st.one_of(st.text(min_size=1, max_size=60), st.sampled_from(["tökén", "t" * 200, "\x00"]))


@pytest.mark.usefixtures("tracking")
@FUZZ
@given(token=tokens, timestamp=timestamps, data=event_data)
def test_no_signed_body_gets_a_500(token, timestamp, data):
    timestamp = str(int(time.time())) if timestamp == "now" else timestamp
    data.setdefault("message", {"headers": {"message-id": MESSAGE_ID.strip("<>")}})
    body = {"signature": signature_block(token, timestamp), "event-data": data}
    tokens_before = MailgunWebhookToken.objects.count()

    answer = _answer(encoded(json.dumps(body)))

    assert answer in {200, 400, 406}
    assert MailgunWebhookToken.objects.count() == tokens_before + (answer == 200)


@pytest.mark.usefixtures("tracking")
@FUZZ
@given(signature=any_json, data=json_texts())
def test_no_signature_block_or_event_data_gets_a_500(signature, data):
    body = json_object({'"signature"': signature, '"event-data"': data})

    assert _answer(encoded(body)) in {400, 406}
