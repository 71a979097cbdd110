"""YooKassa's notifications: store, check the source, then act on what the API says (never on the body).

A notification is a hint that something changed. Handlers re-fetch the object through the
gateway and hand it to billing; duplicates and late news are no-ops answered 200.
"""

import ipaddress
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from billing import clock, selectors, services
from billing.errors import GatewayError, ProviderObjectNotFound
from webhooks.addresses import address_in
from webhooks.models import NotificationOutcome, YooKassaNotification

logger = logging.getLogger(__name__)

# YooKassa's object ids are 36 characters of hex digits and dashes; allow some slack, nothing else.
_OBJECT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
# Of a body from anyone else, this much is kept: enough to see what was tried, too little for
# strangers to fill the inbox.
UNTRUSTED_BODY_KEPT = 64 * 1024


@dataclass(frozen=True)
class Receipt:
    """What to answer YooKassa: 200 ends its redeliveries, anything else asks for another try."""

    http_status: int
    notification: YooKassaNotification


def yookassa_notification_receive(*, remote_addr: str | None, body: bytes) -> Receipt:
    trusted = _is_trusted(remote_addr)
    notification = YooKassaNotification.objects.create(
        remote_addr=_valid_ip(remote_addr),
        # PostgreSQL's text cannot hold NUL: stored as U+FFFD, like bytes that are not UTF-8.
        raw_body=(body if trusted else body[:UNTRUSTED_BODY_KEPT]).decode("utf-8", "replace").replace("\x00", "\ufffd"),
    )
    if not trusted:
        logger.warning("Notification %s from untrusted address %s rejected", notification.id, remote_addr)
        return _finish(notification, NotificationOutcome.REJECTED, "Source address is not one of YooKassa's.", 403)
    notification.trusted_source = True
    parsed = _parse(body)
    if parsed is None:
        return _finish(notification, NotificationOutcome.REJECTED, "Not a YooKassa notification.", 400)
    notification.event, notification.object_id = parsed
    handler = _HANDLERS.get(notification.event)
    if handler is None:
        return _finish(notification, NotificationOutcome.IGNORED, f"No handler for {notification.event}.", 200)
    try:
        outcome, detail = handler(notification)
    except GatewayError as error:
        # We could not verify it now; YooKassa redelivers it later (and reconciliation catches up).
        return _finish(notification, NotificationOutcome.DEFERRED, f"Could not re-fetch: {error}", 503)
    return _finish(notification, outcome, detail, 200)


def _handle_payment_event(notification: YooKassaNotification) -> tuple[str, str]:
    local = selectors.payment_get_by_provider_id(provider_payment_id=notification.object_id)
    if local is not None and not local.is_open:
        notification.payment = local
        return NotificationOutcome.DUPLICATE, f"Payment {local.id} is already {local.status}."
    try:
        payment = services.payment_refresh(provider_payment_id=notification.object_id)
    except ProviderObjectNotFound:
        return NotificationOutcome.IGNORED, "YooKassa does not know this payment."
    except services.UnknownProviderPayment:
        return NotificationOutcome.IGNORED, "Not a payment of this service."
    notification.payment = payment
    return NotificationOutcome.PROCESSED, f"Payment {payment.id} is {payment.status}."


def _handle_refund_event(notification: YooKassaNotification) -> tuple[str, str]:
    local = selectors.refund_get_by_provider_id(provider_refund_id=notification.object_id)
    if local is not None and not local.is_open:
        notification.payment_id = local.payment_id
        return NotificationOutcome.DUPLICATE, f"Refund {local.id} is already {local.status}."
    try:
        refund = services.refund_refresh(provider_refund_id=notification.object_id)
    except ProviderObjectNotFound:
        return NotificationOutcome.IGNORED, "YooKassa does not know this refund."
    except services.UnknownProviderRefund:
        return NotificationOutcome.IGNORED, "Not a refund of this service."
    notification.payment_id = refund.payment_id
    return NotificationOutcome.PROCESSED, f"Refund {refund.id} is {refund.status}."


_HANDLERS: dict[str, Callable[[YooKassaNotification], tuple[str, str]]] = {
    "payment.succeeded": _handle_payment_event,
    "payment.canceled": _handle_payment_event,
    "payment.waiting_for_capture": _handle_payment_event,
    "refund.succeeded": _handle_refund_event,
}


def _finish(notification: YooKassaNotification, outcome: str, detail: str, http_status: int) -> Receipt:
    notification.outcome = outcome
    notification.detail = detail
    notification.processed_at = clock.now()
    notification.save()
    return Receipt(http_status=http_status, notification=notification)


def _parse(body: bytes) -> tuple[str, str] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    if not isinstance(data, dict) or data.get("type") != "notification":
        return None
    event, obj = data.get("event"), data.get("object")
    if not isinstance(event, str) or not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None
    # The id goes into the path of the API call that re-fetches the object: YooKassa's ids only.
    if not (0 < len(event) <= 64 and "\x00" not in event and _OBJECT_ID.fullmatch(obj["id"])):
        return None
    return event, obj["id"]


def _valid_ip(address: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def _is_trusted(address: str | None) -> bool:
    return address_in(address, settings.YOOKASSA_TRUSTED_NETWORKS)
