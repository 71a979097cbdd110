from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from webhooks.addresses import notification_source
from webhooks.services import yookassa_notification_receive


@csrf_exempt
@require_POST
def yookassa_notification(request: HttpRequest) -> HttpResponse:
    """YooKassa ignores the body of the answer; only the status matters."""
    source = notification_source(
        remote_addr=request.META.get("REMOTE_ADDR"),
        forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR"),
        proxies=settings.YOOKASSA_TRUSTED_PROXIES,
    )
    receipt = yookassa_notification_receive(remote_addr=source, body=request.body)
    response = HttpResponse(status=receipt.http_status)
    if receipt.retry_after is not None:
        response["Retry-After"] = str(receipt.retry_after)
    return response
