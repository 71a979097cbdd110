"""Every operation is bounded (depth, aliases, tokens) and unexpected errors are masked."""

import base64

import pytest

pytestmark = pytest.mark.django_db


def test_a_query_deeper_than_ten_levels_is_refused(graphql, token):
    # The schema has no cycles deeper than this, but a hostile client may still send one.
    deepest_real = "{ me { payments { edges { node { subscription { plan { price { amount } } } } } } } }"
    hostile = "{ me { " + "payments { edges { node { subscription { plan { " * 3 + "code" + " } } } } }" * 3 + " } }"

    assert "errors" not in graphql.execute(deepest_real, token=token)
    answer = graphql.execute(hostile, token=token)

    assert "exceeds maximum operation depth of 10" in answer["errors"][0]["message"]


def test_too_many_aliases_are_refused(graphql):
    query = "{ " + " ".join(f"p{n}: plans {{ code }}" for n in range(16)) + " }"

    answer = graphql.execute(query)

    assert "aliases found. Allowed: 15" in answer["errors"][0]["message"]


def test_too_long_a_document_is_refused(graphql):
    query = "{ plans { " + " ".join("code" for _ in range(2001)) + " } }"

    answer = graphql.execute(query)

    assert "Document contains more than 2000 tokens" in answer["errors"][0]["message"]


def test_an_unexpected_error_is_masked(graphql, token, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr("billing.selectors.subscription_list_for_viewer", explode)

    answer = graphql.execute("{ me { subscriptions { status } } }", token=token)

    assert answer["errors"][0]["message"] == "Unexpected error."
    assert "hunter2" not in str(answer)


def test_field_suggestions_are_off_outside_debug(graphql):
    answer = graphql.execute("{ plan { code } }")

    assert "Did you mean" not in answer["errors"][0]["message"]


PAYMENTS_PAGE = "{ me { payments(%s) { edges { node { id } } } } }"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("first: 101", "'first' must be between 0 and 100."),
        ("last: 101", "'last' must be between 0 and 100."),
        ("first: -1", "'first' must be between 0 and 100."),
        ('after: "not-a-cursor"', "'after' and 'before' take a cursor from this connection's edges."),
        ('before: "b3JkZXJlZGN1cnNvcjpbXQ=="', "'after' and 'before' take a cursor from this connection's edges."),
    ],
)
def test_paging_outside_the_limits_is_the_clients_error_not_a_masked_one(graphql, token, arguments, message):
    answer = graphql.execute(PAYMENTS_PAGE % arguments, token=token)

    assert answer["data"] is None
    assert [(error["message"], error["extensions"]) for error in answer["errors"]] == [
        (message, {"code": "BAD_USER_INPUT"})
    ]


@pytest.mark.parametrize("arguments", ["first: 100", "last: 100", "first: 0"])
def test_paging_within_the_limits_is_served(graphql, token, arguments):
    answer = graphql.execute(PAYMENTS_PAGE % arguments, token=token)

    assert answer == {"data": {"me": {"payments": {"edges": []}}}}


def _cursor(inside: str | bytes) -> str:
    """A cursor as strawberry_django encodes one: base64 of `orderedcursor:` and a JSON list."""
    raw = inside.encode() if isinstance(inside, str) else inside
    return base64.b64encode(b"orderedcursor:" + raw).decode()


CURSOR_PAGE = "query($cursor: String) { me { payments(%s: $cursor, first: 5) { edges { node { id } } } } }"
A_PAYMENT_ID = "6f1c1b5e-3f47-4d43-9b43-000000000000"
MALFORMED_CURSORS = {
    "5,000 nested brackets": _cursor("[" * 5000 + "]" * 5000),
    "5,000 bare brackets": "[" * 5000,
    "not base64": "%%% not base64 %%%",
    "not UTF-8 inside": _cursor(b"\xff\xfe"),
    "an object": _cursor('{"created_at": "2027-01-01T00:00:00+00:00"}'),
    "numbers": _cursor("[1, 2]"),
    "a 5,000-digit number": _cursor("[" + "9" * 5000 + ", 1]"),
    "1e999": _cursor("[1e999, 1]"),
    "a nested list": _cursor('[["2027-01-01T00:00:00+00:00"], "x"]'),
    "100,000 values": _cursor("[" + ",".join(['"x"'] * 100_000) + "]"),
    "not a moment": _cursor(f'["yesterday", "{A_PAYMENT_ID}"]'),
    "not a payment id": _cursor('["2027-01-01T00:00:00+00:00", "42"]'),
    "a moment without an offset": _cursor(f'["2027-01-01T00:00:00", "{A_PAYMENT_ID}"]'),
    "year 1 east of UTC": _cursor(f'["0001-01-01T00:00:00+05:00", "{A_PAYMENT_ID}"]'),
    "year 9999 west of UTC": _cursor(f'["9999-12-31T23:59:59-05:00", "{A_PAYMENT_ID}"]'),
    "nulls for fields that are never null": _cursor("[null, null]"),
}


@pytest.mark.parametrize("cursor", MALFORMED_CURSORS.values(), ids=MALFORMED_CURSORS.keys())
@pytest.mark.parametrize("argument", ["after", "before"])
def test_a_malformed_cursor_is_the_clients_error_not_a_masked_one(graphql, token, cursor, argument):
    answer = graphql.execute(CURSOR_PAGE % argument, {"cursor": cursor}, token=token)

    assert answer["data"] is None
    assert [(error["message"], error["extensions"]) for error in answer["errors"]] == [
        ("'after' and 'before' take a cursor from this connection's edges.", {"code": "BAD_USER_INPUT"})
    ]
