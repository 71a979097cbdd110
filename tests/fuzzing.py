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
