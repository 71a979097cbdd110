"""What `/graphql/` accepts as a request's JSON (over HTTP and in websocket messages), and a clear
400 (or, on a websocket, strawberry's 4400 close) for everything else.

Strawberry decodes a body with `json.loads` and trusts the result: invalid UTF-8, nesting deeper
than Python's stack, a 5,000-digit integer (Python's int max-str-digits), `null` or `1e999` as the
whole body each ended in a 500. Here the body must be UTF-8 (RFC 8259 allows no other charset),
numbers finite and of a sane length, nesting shallow, strings free of lone surrogates (no column
or encoder takes them), and the document an object (or a list, which strawberry refuses as a batch).
"""

import json
import math
from typing import Any

# Strawberry's own exception for an HTTP answer: its view turns it into a text/plain response
# of this status, the same shape as strawberry's other 400s.
from cross_web import HTTPException

# No operation of ours takes input nested more than a few levels (variables, extensions).
MAX_DEPTH = 32
# A JSON integer longer than this is no id, amount or page size of ours.
MAX_INTEGER_DIGITS = 64
UTF8_CHARSETS = {"utf-8", "utf8"}


def parse_request_json(data: str | bytes) -> Any:
    """The request's JSON document (the body, or a query parameter's value), or HTTPException(400)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise HTTPException(400, "The request body must be JSON encoded as UTF-8.") from error
    try:
        document = json.loads(data, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError as error:
        raise HTTPException(400, f"The request's JSON is nested more than {MAX_DEPTH} levels deep.") from error
    except json.JSONDecodeError as error:
        raise HTTPException(400, "Unable to parse request body as JSON") from error
    if not isinstance(document, dict | list):
        raise HTTPException(400, 'The request\'s JSON must be an object, such as {"query": "{ plans { code } }"}.')
    _check_values(document)
    return document


def check_charset(params: dict[str, str]) -> None:
    """A body declared in another charset than UTF-8 (or one Python does not know) is refused
    rather than read as UTF-8 behind the client's back."""
    charset = params.get("charset")
    if charset is not None and charset.strip().strip('"').lower() not in UTF8_CHARSETS:
        raise HTTPException(400, "JSON bodies must be UTF-8: send 'charset=utf-8' or no charset.")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise HTTPException(400, f"A number in the request's JSON has more than {MAX_INTEGER_DIGITS} digits.")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise HTTPException(400, "A number in the request's JSON is too large.")
    return value


def _no_constant(name: str):
    raise HTTPException(400, f"{name} is not a JSON number.")


def _check_values(document: dict | list) -> None:
    """Depth and strings, walked without recursion (the document may be as deep as json allowed)."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            if isinstance(value, str) and not _is_encodable(value):
                raise HTTPException(400, "A string in the request's JSON has a lone surrogate (\\ud800-\\udfff).")
            continue
        if depth > MAX_DEPTH:
            raise HTTPException(400, f"The request's JSON is nested more than {MAX_DEPTH} levels deep.")
        pending.extend((child, depth + 1) for child in children)


def _is_encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# The graphql-transport-ws messages that start or end an operation (the only protocol served).
OPERATION_MESSAGES = {"subscribe"}
OPERATION_END_MESSAGES = {"complete"}


def websocket_message_problem(message: dict) -> str | None:
    """What is wrong with a websocket message's shape, or None. Strawberry's handlers index into
    `id` and `payload` trusting the protocol: a list as id, a missing type or a payload that is no
    object raised inside the consumer and killed it."""
    kind = message.get("type")
    if not isinstance(kind, str):
        return "A message's `type` is a string."
    if kind in OPERATION_MESSAGES | OPERATION_END_MESSAGES and not isinstance(message.get("id"), str):
        return "A message's `id` is a string."
    if kind not in OPERATION_MESSAGES:
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return "An operation's `payload` is an object with a `query` string."
    for name, kinds in (("variables", dict), ("extensions", dict), ("operationName", str)):
        if payload.get(name) is not None and not isinstance(payload[name], kinds):
            return f"An operation's `{name}` is a {kinds.__name__} or null."
    return None
