import strawberry
from django.conf import settings
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry_django.optimizer import DjangoOptimizerExtension

from graphql_api.plans import PlanQueries

Query = merge_types("Query", (PlanQueries,))


def _is_unexpected(error: GraphQLError) -> bool:
    """Mask what the server did not mean to say: errors raised by code, not by the request."""
    return error.original_error is not None


def _extensions() -> list:
    extensions = [
        DjangoOptimizerExtension,
        lambda: QueryDepthLimiter(max_depth=10),
        lambda: MaxAliasesLimiter(max_alias_count=15),
        lambda: MaxTokensLimiter(max_token_count=2000),
    ]
    if not settings.DEBUG:
        extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
        extensions.append(lambda: MaskErrors(should_mask_error=_is_unexpected))
    return extensions


schema = strawberry.Schema(
    query=Query,
    config=StrawberryConfig(disable_field_suggestions=not settings.DEBUG),
    extensions=_extensions(),
)
