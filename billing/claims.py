"""The entitlements claim Auth puts in a viewer's JWT, and how many subscriptions fit in a token.

The claim, under the name `bil`:

    "bil": {"v": 7, "s": [["premium-monthly", "A", 1767225600, "hd,4k,offline"]]}

`v` is the entitlements version (billing.entitlements); each item of `s` is one entitlement:
the plan's code, its status as one letter (`a` active, `p` past due; upper case when it renews
automatically, lower case when it does not), the end of access as Unix seconds (UTC), and the
plan's features joined with commas ("" for none). Arrays, not objects: no key is repeated per item.

The budget: a token is sent in `Authorization: Bearer <token>` and often in a cookie. We hold it to
TOKEN_BUDGETS: 4 KiB (a browser's cookie limit, name and attributes aside) and 8 KiB (nginx's
default large_client_header_buffers, the whole header line). `claim_budget` encodes real tokens
with PyJWT, with a typical Auth payload besides the claim, and counts the subscriptions that fit
for HS256 and RS256 (a 2048-bit key: 342 characters of signature). A viewer has one live
subscription today (a database constraint), so one always fits with room to spare.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import jwt

from billing.entitlements import Entitlement, VersionedEntitlements

CLAIM = "bil"
STATUS_LETTERS = {"active": "a", "past_due": "p"}
TOKEN_BUDGETS = {"4 KiB token": 4096, "8 KiB header line": 8192 - len("Authorization: Bearer ")}
ALGORITHMS = ("HS256", "RS256")


def entitlements_claim(entitlements: VersionedEntitlements) -> dict:
    """The `bil` claim's value for these entitlements."""
    return {"v": entitlements.version, "s": [_item(entitlement) for entitlement in entitlements.entitlements]}


def _item(entitlement: Entitlement) -> list:
    letter = STATUS_LETTERS[entitlement.status]
    return [
        entitlement.plan,
        letter.upper() if entitlement.auto_renew else letter,
        int(entitlement.valid_until.timestamp()),
        ",".join(entitlement.features),
    ]


def typical_auth_payload(now: datetime) -> dict:
    """What Auth puts in a viewer's token besides the claim, at a typical size."""
    return {
        "iss": "https://auth.cinema.example",
        "aud": "cinema",
        "sub": str(uuid.UUID(int=2**128 - 1)),
        "sid": str(uuid.UUID(int=2**127)),
        "jti": str(uuid.UUID(int=2**126)),
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=15)).timestamp()),
        "email": "a.viewer.with.a.longish.name@example-mail.com",
        "roles": ["viewer"],
        "locale": "ru-RU",
    }


# The largest entitlement a plan can make: a 50-character code (Plan.code) and eight features of
# 16 characters (plans.models.MAX_FEATURES, FEATURE_PATTERN); and the demo catalog's largest.
WORST_CASE = Entitlement(
    plan="p" * 50,
    status="past_due",
    valid_until=datetime(2099, 12, 31, tzinfo=UTC),
    auto_renew=True,
    features=tuple(f"feature-{i:02d}-xxxxx"[:16] for i in range(8)),
)
TYPICAL = Entitlement(
    plan="premium-monthly",
    status="active",
    valid_until=datetime(2027, 1, 4, tzinfo=UTC),
    auto_renew=True,
    features=("hd", "4k", "offline"),
)


@dataclass(frozen=True)
class BudgetLine:
    algorithm: str
    budget_name: str
    budget_bytes: int
    kind: str  # "worst case" or "typical"
    base_token_bytes: int  # the token without any subscription in the claim
    per_subscription_bytes: float
    fit: int  # subscriptions that fit


def claim_budget(*, max_count: int = 200) -> list[BudgetLine]:
    """For each algorithm, budget and entitlement size: how many subscriptions fit, by encoding tokens."""
    lines = []
    for algorithm in ALGORITHMS:
        for kind, entitlement in (("worst case", WORST_CASE), ("typical", TYPICAL)):
            sizes = [token_size(algorithm, [entitlement] * count) for count in range(max_count + 1)]
            for budget_name, budget in TOKEN_BUDGETS.items():
                fit = max((count for count, size in enumerate(sizes) if size <= budget), default=-1)
                if fit == max_count:
                    raise ValueError(f"More than {max_count} fit: raise max_count.")
                lines.append(
                    BudgetLine(
                        algorithm=algorithm,
                        budget_name=budget_name,
                        budget_bytes=budget,
                        kind=kind,
                        base_token_bytes=sizes[0],
                        per_subscription_bytes=(sizes[max_count] - sizes[0]) / max_count,
                        fit=fit,
                    )
                )
    return lines


def token_size(algorithm: str, entitlements: Sequence[Entitlement]) -> int:
    """The length of a real token (header.payload.signature) with these entitlements in its claim."""
    now = datetime(2026, 12, 4, tzinfo=UTC)
    payload = typical_auth_payload(now) | {
        CLAIM: entitlements_claim(
            VersionedEntitlements(viewer_id=uuid.UUID(int=0), version=2**31, entitlements=tuple(entitlements))
        )
    }
    # PyJWT writes compact JSON (no spaces), as Auth's library is expected to.
    return len(jwt.encode(payload, _signing_key(algorithm), algorithm=algorithm))


@cache
def _signing_key(algorithm: str):
    if algorithm == "HS256":
        return "s" * 64
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
