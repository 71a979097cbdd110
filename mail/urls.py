"""Mailgun's delivery-tracking webhook: Anymail's view behind mail's checks of shape, freshness and
replay (mail.webhooks); it sends `anymail.signals.tracking`, which mail.receivers records. Only this
one of Anymail's views is mounted: the others would take unsigned events for other providers."""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from mail.webhooks import MailgunTrackingView

_mailgun_tracking = MailgunTrackingView.as_view()


@csrf_exempt
def mailgun_tracking(request: HttpRequest) -> HttpResponse:
    # Without a signing key nothing could be verified (and Anymail would fall back to the API key).
    if not settings.MAILGUN_WEBHOOK_SIGNING_KEY:
        raise Http404("Mailgun tracking is not configured.")
    return _mailgun_tracking(request)


urlpatterns = [
    path("mailgun/tracking/", mailgun_tracking, name="mailgun-tracking"),
]
