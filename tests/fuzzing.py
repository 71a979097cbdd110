"""Hypothesis strategies shared by the fuzz tests: JSON as text (so it can hold what json.dumps
cannot write: 5,000-digit numbers, 1e999, NaN, lone surrogates, nesting past Python's stack) and
the content types a client may claim. Derandomized and bounded, so CI runs the same examples fast."""

import json

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

FUZZ = hypothesis_settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

JSON_ODDITIES = [
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "9" * 5000,
    "1" + "0" * 400,
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u0000"',
    '"\\uffff"',
]
json_atoms = st.one_of(
    st.sampled_from(JSON_ODDITIES),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=30).map(json.dumps),
)


def json_array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def json_object(items: dict[str, str]) -> str:
    """An object from its members' JSON texts, keyed by their keys' JSON texts."""
    return "{" + ",".join(f"{key}:{value}" for key, value in items.items()) + "}"


def json_texts(atoms=json_atoms):
    return st.recursive(
        atoms,
        lambda children: st.one_of(
            st.lists(children, max_size=5).map(json_array),
            st.dictionaries(st.text(max_size=10).map(json.dumps), children, max_size=5).map(json_object),
        ),
        max_leaves=25,
    )


def _nested(depth: int, opening: str) -> str:
    closing = "]" if opening == "[" else "}"
    return opening * depth + "1" + closing * depth


deep_nesting = st.builds(_nested, st.integers(min_value=1, max_value=6000), st.sampled_from(["[", '{"a":']))
any_json = st.one_of(json_texts(), deep_nesting)

content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            'application/json; charset="UTF-8"',
            "application/json; charset=latin-1",
            "application/json; charset=utf-16",
            "application/json; charset=x-no-such-charset",
            "application/json; charset",
            "application/json;;;",
            "multipart/form-data; boundary=B",
            "application/x-www-form-urlencoded",
            "text/plain",
            "application/graphql",
            "",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
)


def encoded(text: str) -> bytes:
    """UTF-8, lone surrogates included (as a careless client would send them)."""
    return text.encode("utf-8", "surrogatepass")


# --- values for the variables of real operations ----------------------------------------------
# Python values (sent with json.dumps), typed as the schema wants them but hostile, or wrongly typed.

HOSTILE_TEXTS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff\ud800",
    "\u202e",
    "\u200b",
    "\ufeff",
    "x" * 10_000,
    "é" * 3000,
    "😀" * 100,
    "'; DROP TABLE billing_payment; --",
    "%00",
    "../../etc/passwd",
    "null",
    "-1",
]
hostile_texts = st.one_of(st.sampled_from(HOSTILE_TEXTS), st.text(max_size=40))
hostile_ints = st.one_of(
    st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30, 100, 101, 10**6]),
    st.integers(min_value=-1000, max_value=1000),
)
wrongly_typed = st.one_of(
    st.sampled_from([None, True, False, 0, 1.5, -0.0, 1e308, "true", "1", [], {}, [None], {"": None}]),
    st.lists(st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=3),
)


def mostly(common, rare):
    """`common` about three times in four (one_of(common, common, common, rare) would not: it drops
    repeated branches)."""
    return st.sampled_from([common, common, common, rare]).flatmap(lambda strategy: strategy)
