from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from webhooks.services import yookassa_notification_receive


@csrf_exempt
@require_POST
def yookassa_notification(request: HttpRequest) -> HttpResponse:
    """YooKassa ignores the body of the answer; only the status matters."""
    receipt = yookassa_notification_receive(remote_addr=request.META.get("REMOTE_ADDR"), body=request.body)
    return HttpResponse(status=receipt.http_status)
