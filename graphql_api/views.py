from cross_web import HTTPException
from strawberry.channels import GraphQLWSConsumer
from strawberry.django.views import AsyncGraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.parse_content_type import parse_content_type

from graphql_api.auth import AuthenticationError, Context, viewer_from_authorization
from graphql_api.http_body import check_charset, parse_request_json


class BillingGraphQLView(AsyncGraphQLView):
    """Strawberry's view, with every malformed request a clear 400 (text/plain, as strawberry's own
    400s) instead of a 500: see graphql_api.http_body for what a body must be."""

    async def get_context(self, request, response) -> Context:
        return Context(request=request, response=response)

    async def parse_http_body(self, request):
        if request.method == "POST":
            content_type, params = parse_content_type(request.content_type or "")
            if "application/json" not in content_type:
                # Strawberry would read multipart bodies only with uploads enabled; we take none.
                raise HTTPException(400, "Send the operation as JSON, with 'Content-Type: application/json'.")
            check_charset(params)
        request_data = await super().parse_http_body(request)
        for operation in request_data if isinstance(request_data, list) else [request_data]:
            if not isinstance(operation.operation_name, str | None):
                raise HTTPException(
                    400, "The GraphQL operation's `operationName` must be a string or null, if provided."
                )
        return request_data

    def parse_json(self, data: str | bytes):
        """Strawberry's one door for a request's JSON: the body, and GET's `variables`/`extensions`."""
        return parse_request_json(data)


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
