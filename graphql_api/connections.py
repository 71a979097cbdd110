"""Connections whose bad paging arguments are the client's error, told as such (not masked).

A cursor is opaque to clients but not trusted: strawberry_django decodes it (base64 of
`orderedcursor:` and a JSON list of the ordering fields' values) and puts its values in the page's
query. Whatever a client sends instead, nested 5,000 deep, not base64, values of the wrong type or
moments no database column holds, is refused here as a PagingError before any query is built.
"""

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry_django.relay import DjangoCursorConnection
from strawberry_django.relay.cursor_connection import (
    DjangoCursorEdge,
    OrderedCollectionCursor,
    annotate_ordering_fields,
)

# Our cursors are about 100 characters; these bounds leave room and keep decoding cheap.
MAX_CURSOR_LENGTH = 1024
MAX_CURSOR_VALUES = 8
MAX_CURSOR_VALUE_LENGTH = 128
NOT_A_CURSOR = "'after' and 'before' take a cursor from this connection's edges."


class PagingError(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT"})


@strawberry.type(name="CursorConnection", description="A connection to a list of items.")
class BoundedCursorConnection(DjangoCursorConnection[relay.NodeType]):
    @classmethod
    def resolve_connection(
        cls,
        nodes,
        *,
        info,
        before: str | None = None,
        after: str | None = None,
        first: int | None = None,
        last: int | None = None,
        max_results: int | None = None,
        **kwargs: Any,
    ):
        limit = max_results if max_results is not None else info.schema.config.relay_max_results
        for name, value in (("first", first), ("last", last)):
            if value is not None and not 0 <= value <= limit:
                raise PagingError(f"'{name}' must be between 0 and {limit}.")
        for cursor in (after, before):
            if cursor:
                _check_cursor(cursor, nodes)
        try:
            return super().resolve_connection(
                nodes, info=info, before=before, after=after, first=first, last=last, max_results=max_results, **kwargs
            )
        except ValueError as error:  # what is left: a cursor that is none of this connection's
            raise PagingError(NOT_A_CURSOR) from error


def _check_cursor(cursor: str, nodes) -> None:
    """Refuse a cursor unless it is shaped like ours and its values are ones the page's query can use."""
    _check_shape(cursor)
    _, descriptors, _ = annotate_ordering_fields(nodes)
    try:
        values = OrderedCollectionCursor.from_cursor(cursor, descriptors).field_values
    except ValueError as error:  # values the ordering fields do not take
        raise PagingError(NOT_A_CURSOR) from error
    if not all(_usable(value, descriptor.maybe_null) for value, descriptor in zip(values, descriptors, strict=True)):
        raise PagingError(NOT_A_CURSOR)


def _check_shape(cursor: str) -> None:
    """Short, base64 of UTF-8, our prefix, and a flat JSON list of short strings or nulls."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise PagingError(NOT_A_CURSOR)
    try:
        prefix, _, values_json = base64.b64decode(cursor, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError) as error:  # not base64 (or not ASCII), or not UTF-8 inside
        raise PagingError(NOT_A_CURSOR) from error
    if prefix != DjangoCursorEdge.CURSOR_PREFIX:
        raise PagingError(NOT_A_CURSOR)
    try:
        values = json.loads(values_json)
    except (ValueError, RecursionError) as error:  # short as it is, it may still nest hundreds deep
        raise PagingError(NOT_A_CURSOR) from error
    if not isinstance(values, list) or len(values) > MAX_CURSOR_VALUES:
        raise PagingError(NOT_A_CURSOR)
    for value in values:
        if value is not None and (not isinstance(value, str) or len(value) > MAX_CURSOR_VALUE_LENGTH):
            raise PagingError(NOT_A_CURSOR)


def _usable(value: Any, maybe_null: bool) -> bool:
    """We issue moments with their offset, inside what a database column and UTC can hold; a naive
    one or one at the edge of the calendar would fail (or warn) only when the query runs."""
    if value is None:
        return maybe_null
    if not isinstance(value, datetime):
        return True
    if value.tzinfo is None or value.utcoffset() is None:
        return False
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True
