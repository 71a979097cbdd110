"""Every operation is bounded (depth, aliases, tokens) and unexpected errors are masked."""

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
