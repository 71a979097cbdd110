"""HTTP goes through Django (AsyncGraphQLView runs sync resolvers on parallel threads and keeps
Django's middleware); only websockets go through channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL  # noqa: E402

from graphql_api.hints import hint_mark_server_loop  # noqa: E402
from graphql_api.schema import schema  # noqa: E402
from graphql_api.views import BillingGraphQLWSConsumer  # noqa: E402


async def application(scope, receive, send):
    """The router below, with the server's loop marked for live hints (graphql_api.hints)."""
    hint_mark_server_loop()
    await router(scope, receive, send)


router = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter(
            [
                path(
                    "graphql/",
                    BillingGraphQLWSConsumer.as_asgi(
                        schema=schema,
                        allowed_origins=settings.GRAPHQL_WS_ALLOWED_ORIGINS,
                        # The documented protocol only: the caps and close codes are written for it.
                        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
                    ),
                ),
            ]
        ),
    }
)
