"""Connections whose bad paging arguments are the client's error, told as such (not masked)."""

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry_django.relay import DjangoCursorConnection


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
        try:
            return super().resolve_connection(
                nodes, info=info, before=before, after=after, first=first, last=last, max_results=max_results, **kwargs
            )
        except ValueError as error:  # what is left: a cursor that is none of this connection's
            raise PagingError("'after' and 'before' take a cursor from this connection's edges.") from error
