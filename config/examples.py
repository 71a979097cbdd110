"""The example checkout page (frontend_examples/checkout.html), served with DEBUG on the API's origin."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template import RequestContext, Template
from django.views.decorators.http import require_safe

CHECKOUT_PAGE = settings.BASE_DIR / "frontend_examples" / "checkout.html"


@require_safe
def checkout_page(request: HttpRequest) -> HttpResponse:
    # Rendered as a template only to give its inline script and style the response's CSP nonce.
    # Read on each request: an edited page shows on reload, as a static file would.
    page = Template(CHECKOUT_PAGE.read_text(encoding="utf-8"))
    return HttpResponse(page.render(RequestContext(request)))
