import json

from cross_web import HTTPException
from strawberry.channels import GraphQLWSConsumer
from strawberry.django.views import AsyncGraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.parse_content_type import parse_content_type

from graphql_api.auth import AuthenticationError, Context, viewer_from_authorization
from graphql_api.request_checks import check_charset, parse_request_json, websocket_message_problem


class BillingGraphQLView(AsyncGraphQLView):
    """Strawberry's view, with every malformed request a clear 400 (text/plain, as strawberry's own
    400s) instead of a 500: see graphql_api.request_checks for what a body must be."""

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

    def decode_json(self, data: str | bytes) -> object:
        """Each websocket message, held to the same rules as a request body and to the protocol's
        shape. Strawberry closes the socket with 4400 ("must be valid JSON"; graphql-ws drops the
        message) on a JSONDecodeError only: anything else (nesting past the stack, a 5,000-digit
        integer, `null`, a list as an operation's id) used to kill the consumer."""
        try:
            message = parse_request_json(data)
        except HTTPException as error:
            raise json.JSONDecodeError(error.reason, "", 0) from error
        if not isinstance(message, dict):
            raise json.JSONDecodeError("A websocket message is a JSON object.", "", 0)
        if problem := websocket_message_problem(message):
            raise json.JSONDecodeError(problem, "", 0)
        return message

    async def on_ws_connect(self, context: Context):
        """A token sent at connection_init must be valid; no token leaves only public fields."""
        if context.authorization is not None:
            try:
                viewer_from_authorization(context.authorization)
            except AuthenticationError as exc:
                raise ConnectionRejectionError({"message": exc.message}) from exc
        return await super().on_ws_connect(context)
