"""The entitlements claim for the viewer's JWT, and how many subscriptions fit in a token."""

from datetime import UTC, datetime

import jwt
import pytest

from billing.claims import (
    CLAIM,
    TOKEN_BUDGETS,
    TYPICAL,
    WORST_CASE,
    claim_budget,
    entitlements_claim,
    token_size,
)
from billing.entitlements import Entitlement, VersionedEntitlements, entitlements_get
from graphql_api.auth import viewer_from_token
from tests.helpers import GraphQLClient, make_token, subscribe_and_pay

# What the README states; each is checked against real tokens below.
FITS = {
    ("HS256", "worst case", "4 KiB token"): 12,
    ("HS256", "worst case", "8 KiB header line"): 27,
    ("HS256", "typical", "4 KiB token"): 52,
    ("HS256", "typical", "8 KiB header line"): 111,
    ("RS256", "worst case", "4 KiB token"): 11,
    ("RS256", "worst case", "8 KiB header line"): 26,
    ("RS256", "typical", "4 KiB token"): 47,
    ("RS256", "typical", "8 KiB header line"): 107,
}


@pytest.mark.django_db
@pytest.mark.usefixtures("sandbox")
def test_the_claim_of_a_paying_viewer(viewer, plans):
    # given a viewer who paid for Premium
    subscription = subscribe_and_pay(viewer, plans["premium-monthly"])

    # when their claim is rendered
    claim = entitlements_claim(entitlements_get(viewer_id=viewer.id))

    # then it is the version and one compact item
    assert claim == {
        "v": 1,
        "s": [["premium-monthly", "A", int(subscription.current_period_end.timestamp()), "hd,4k,offline"]],
    }


def test_past_due_without_renewal_is_a_lower_case_p_and_no_features_an_empty_string():
    entitlement = Entitlement(
        plan="basic", status="past_due", valid_until=datetime(2027, 1, 1, tzinfo=UTC), auto_renew=False, features=()
    )

    claim = entitlements_claim(VersionedEntitlements(viewer_id=None, version=3, entitlements=(entitlement,)))

    assert claim == {"v": 3, "s": [["basic", "p", 1798761600, ""]]}


def test_the_budget_is_what_real_tokens_measure():
    lines = claim_budget()

    assert {(line.algorithm, line.kind, line.budget_name): line.fit for line in lines} == FITS
    for line in lines:
        entitlement = WORST_CASE if line.kind == "worst case" else TYPICAL
        assert token_size(line.algorithm, [entitlement] * line.fit) <= line.budget_bytes
        assert token_size(line.algorithm, [entitlement] * (line.fit + 1)) > line.budget_bytes


def test_an_rs256_signature_of_a_2048_bit_key_is_342_characters():
    assert token_size("RS256", []) - token_size("HS256", []) == 342 - 43


def test_the_budgets_are_4_kib_and_an_8_kib_header_line():
    assert {"4 KiB token": 4096, "8 KiB header line": 8192 - len("Authorization: Bearer ")} == TOKEN_BUDGETS


@pytest.mark.django_db
@pytest.mark.parametrize("with_claim", [True, False])
def test_billings_own_viewer_auth_works_with_or_without_the_claim(viewer, with_claim):
    # given a token from Auth, with the claim filled to the budget or without it
    claims = {
        CLAIM: entitlements_claim(
            VersionedEntitlements(viewer_id=viewer.id, version=9, entitlements=(WORST_CASE,) * 12)
        )
    }
    token = make_token(viewer.id, viewer.email, **(claims if with_claim else {}))

    # when billing authenticates the viewer by it, directly and over GraphQL
    authenticated = viewer_from_token(token)
    result = GraphQLClient().execute("{ me { id } }", token=token)

    # then it is the viewer either way
    assert authenticated.id == viewer.id
    assert result == {"data": {"me": {"id": str(viewer.id)}}}
    assert (CLAIM in jwt.decode(token, options={"verify_signature": False})) is with_claim
