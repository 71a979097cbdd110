import asyncio
import json
import logging

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from cross_web import HTTPException
from strawberry.channels import GraphQLWSConsumer
from strawberry.django.views import AsyncGraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler

from graphql_api import live_limits
from graphql_api.auth import AuthenticationError, Context, viewer_from_authorization
from graphql_api.request_checks import check_charset, parse_request_json, websocket_message_problem

logger = logging.getLogger(__name__)

# Once the socket is gone, its operations get this long to finish before they are cancelled.
OPERATIONS_END_TIMEOUT = 1.0
# A channel layer that fails (Redis away) is asked again after this long, then up to the cap.
LAYER_RETRY_FIRST_SECONDS = 1.0
LAYER_RETRY_MAX_SECONDS = 30.0


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


class _TransportWSHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws, with a close code of our own for a viewer past the socket cap."""

    async def handle_connection_init(self, message) -> None:
        try:
            await super().handle_connection_init(message)
        except live_limits.TooManyLiveSockets:
            await self.websocket.close(code=live_limits.TOO_MANY_SOCKETS_CLOSE_CODE, reason="Too many live websockets")


class BillingGraphQLWSConsumer(GraphQLWSConsumer):
    """strawberry's websocket consumer, bound to its socket's lifetime.

    strawberry runs the protocol (and each operation) in tasks of their own, ended only by its
    `disconnect()`. Channels calls that after `aclose_old_connections()` on the process's one
    sync thread, the thread every websocket's database reads queue on: with 2,000 subscriptions
    reading, the disconnect waited behind them, daphne gave up after its application_close_timeout
    and cancelled the consumer, `disconnect()` never ran, and the subscriptions' loops went on
    forever (issue 9). So here the websocket's own messages skip that thread (no handler of ours
    touches the database on it), and whatever ends the consumer, the operations end with it.
    A channel layer that fails (Redis away) no longer ends the consumer either: subscriptions go on
    from their timers while the layer is asked again.
    """

    graphql_transport_ws_handler_class = _TransportWSHandler

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._viewer_id_holding_a_socket = None

    async def get_context(self, request, response) -> Context:
        return Context(request=request, response=response)

    def decode_json(self, data: str | bytes) -> object:
        """Each websocket message, held to the same rules as a request body and to the protocol's
        shape. Strawberry closes the socket with 4400 ("must be valid JSON") on a
        JSONDecodeError only: anything else (nesting past the stack, a 5,000-digit
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
                viewer = viewer_from_authorization(context.authorization)
            except AuthenticationError as exc:
                raise ConnectionRejectionError({"message": exc.message}) from exc
            live_limits.socket_slot_take(viewer_id=viewer.id)
            self._viewer_id_holding_a_socket = viewer.id
        return await super().on_ws_connect(context)

    async def __call__(self, scope, receive, send):
        # AsyncConsumer.__call__, with a channel layer receive that survives the layer's failures.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = self._receive_from_layer
            sources.append(self.channel_receive)
        self.base_send = send
        try:
            await await_many_dispatch(sources, self.dispatch)
        except StopConsumer:
            pass
        finally:
            await self._end_operations()
            if self._viewer_id_holding_a_socket is not None:
                live_limits.socket_slot_give_back(viewer_id=self._viewer_id_holding_a_socket)
                self._viewer_id_holding_a_socket = None

    async def dispatch(self, message) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is not None and message["type"].startswith("websocket."):
            # Not behind the sync thread (see the class's docstring): these handlers only queue.
            await handler(message)
            return
        await super().dispatch(message)

    async def _receive_from_layer(self) -> dict:
        delay = LAYER_RETRY_FIRST_SECONDS
        while True:
            try:
                return await self.channel_layer.receive(self.channel_name)
            except Exception as exc:
                logger.warning("The channel layer cannot be read (%r): live hints wait, timers go on", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LAYER_RETRY_MAX_SECONDS)

    async def _end_operations(self) -> None:
        """Tell strawberry's protocol task the socket is gone; cancel it if it does not end in time."""
        run_task = self.run_task
        if run_task is None or run_task.done():
            return
        self.message_queue.put_nowait({"message": None, "disconnected": True})
        try:
            await asyncio.wait_for(asyncio.shield(run_task), OPERATIONS_END_TIMEOUT)
        except TimeoutError:
            run_task.cancel()
        except (Exception, asyncio.CancelledError) as exc:  # the consumer ends whatever the task did
            logger.debug("The websocket's protocol task ended with %r", exc)
