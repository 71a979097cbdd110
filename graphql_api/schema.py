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

from graphql_api.live import LivePaymentSubscriptions, SubscriptionsOverWebsocketOnly
from graphql_api.mutations import BillingMutations
from graphql_api.plans import PlanQueries
from graphql_api.viewer import ViewerQueries

Query = merge_types("Query", (PlanQueries, ViewerQueries))
Mutation = merge_types("Mutation", (BillingMutations,))
Subscription = merge_types("Subscription", (LivePaymentSubscriptions,))


class BillingSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context=None) -> None:
        """Log what went wrong on our side; a client's bad token or bad query is not our error."""
        unexpected = [error for error in errors if _is_unexpected(error)]
        super().process_errors(unexpected, execution_context)


def _is_unexpected(error: GraphQLError) -> bool:
    """Mask what the server did not mean to say: exceptions of code, not GraphQL errors meant for clients."""
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


def _extensions() -> list:
    extensions = [
        DjangoOptimizerExtension,
        SubscriptionsOverWebsocketOnly,
        lambda: QueryDepthLimiter(max_depth=10),
        lambda: MaxAliasesLimiter(max_alias_count=15),
        lambda: MaxTokensLimiter(max_token_count=2000),
    ]
    if not settings.DEBUG:
        extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
        extensions.append(lambda: MaskErrors(should_mask_error=_is_unexpected))
    return extensions


schema = BillingSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    config=StrawberryConfig(disable_field_suggestions=not settings.DEBUG),
    extensions=_extensions(),
)
