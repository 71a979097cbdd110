from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from config.examples import checkout_page
from config.health import healthz
from graphql_api.schema import schema
from graphql_api.views import BillingGraphQLView

admin.site.site_header = "Cinema billing"
admin.site.site_title = "Cinema billing"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Viewers authenticate with a bearer token, never a cookie, so CSRF cannot apply.
    path(
        "graphql/",
        csrf_exempt(
            BillingGraphQLView.as_view(
                schema=schema, graphql_ide="graphiql" if settings.DEBUG else None, allow_queries_via_get=False
            )
        ),
    ),
    path("webhooks/", include("webhooks.urls")),
    # For the cinema's services, with their own API keys; no viewer token is accepted there.
    path("internal/v1/", include("internal_api.urls")),
    # The path Anymail documents for Mailgun's tracking webhook.
    path("anymail/", include("mail.urls")),
    path("healthz", healthz),
]

if settings.DEBUG:
    # The example checkout page, on the API's own origin (see frontend_examples/README.md).
    urlpatterns.append(path("examples/checkout/", checkout_page))
