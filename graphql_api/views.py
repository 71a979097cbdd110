from strawberry.channels import GraphQLWSConsumer
from strawberry.django.views import AsyncGraphQLView
from strawberry.exceptions import ConnectionRejectionError

from graphql_api.auth import AuthenticationError, Context, viewer_from_authorization


class BillingGraphQLView(AsyncGraphQLView):
    async def get_context(self, request, response) -> Context:
        return Context(request=request, response=response)


class BillingGraphQLWSConsumer(GraphQLWSConsumer):
    async def get_context(self, request, response) -> Context:
        return Context(request=request, response=response)

    async def on_ws_connect(self, context: Context):
        """A token sent at connection_init must be valid; no token leaves only public fields."""
        if context.authorization is not None:
            try:
                viewer_from_authorization(context.authorization)
            except AuthenticationError as exc:
                raise ConnectionRejectionError({"message": exc.message}) from exc
        return await super().on_ws_connect(context)
