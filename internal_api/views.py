"""The internal API's views: plain JSON, for the cinema's services (never for viewers).

Every view names its scope; bad input is a 400 with `{"error": {"code", "message"}}`, never a 500.
An unknown viewer reads like a viewer with nothing (entitlements empty at version 0, empty lists):
the API tells no one which viewers exist.
"""

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps

from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from billing.entitlements import VersionedEntitlements, entitlements_get_many, entitlements_to_json
from billing.models import Payment, Subscription
from billing.selectors import payment_list_for_viewer, subscription_list_for_viewer
from internal_api.credentials import CredentialError, credential_authenticate
from internal_api.models import SCOPE_BILLING_READ, SCOPE_ENTITLEMENTS_READ

MAX_BATCH = 1000
MAX_BODY_BYTES = 64 * 1024  # 1,000 quoted UUIDs with commas are about 39 KiB
DEFAULT_PAGE, MAX_PAGE = 50, 100


class BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _error(status: int, code: str, message: str, **headers) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status, headers=headers)


def service_view(*, scope: str, method: str) -> Callable:
    def decorate(view):
        @csrf_exempt  # services authenticate with a bearer key, never a cookie
        @wraps(view)
        def wrapped(request: HttpRequest, **kwargs) -> HttpResponse:
            if request.method != method:
                return _error(405, "METHOD_NOT_ALLOWED", f"Use {method}.", Allow=method)
            try:
                credential_authenticate(request.headers.get("Authorization"), scope=scope)
            except CredentialError as refused:
                headers = {"WWW-Authenticate": 'Bearer realm="internal"'} if refused.status == 401 else {}
                return _error(refused.status, refused.code, refused.message, **headers)
            try:
                return view(request, **kwargs)
            except BadRequest as bad:
                return _error(400, bad.code, bad.message)

        return wrapped

    return decorate


@service_view(scope=SCOPE_ENTITLEMENTS_READ, method="GET")
def viewer_entitlements(request: HttpRequest, viewer_id: str) -> HttpResponse:
    found = entitlements_get_many(viewer_ids=[_viewer_id(viewer_id)])
    (entitlements,) = found.values()
    etag = _etag(entitlements)
    if _matches(request.headers.get("If-None-Match"), etag):
        return HttpResponse(status=304, headers={"ETag": etag})
    return JsonResponse(_entitlements_json(entitlements), headers={"ETag": etag, "Cache-Control": "no-cache"})


@service_view(scope=SCOPE_ENTITLEMENTS_READ, method="POST")
def entitlements_batch(request: HttpRequest) -> HttpResponse:
    if len(request.body) > MAX_BODY_BYTES:
        raise BadRequest("TOO_LARGE", f"The body is over {MAX_BODY_BYTES} bytes.")
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
        raise BadRequest("BAD_JSON", "The body is not JSON.") from exc
    ids = body.get("viewer_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
        raise BadRequest("BAD_REQUEST", 'The body is {"viewer_ids": ["<uuid>", ...]}.')
    if len(ids) > MAX_BATCH:
        raise BadRequest("TOO_MANY_IDS", f"At most {MAX_BATCH} viewer ids in one request.")
    viewer_ids = list(dict.fromkeys(_viewer_id(item) for item in ids))
    found = entitlements_get_many(viewer_ids=viewer_ids)
    return JsonResponse({"viewers": [_entitlements_json(found[viewer_id]) for viewer_id in viewer_ids]})


@service_view(scope=SCOPE_BILLING_READ, method="GET")
def viewer_subscriptions(request: HttpRequest, viewer_id: str) -> HttpResponse:
    subscriptions = subscription_list_for_viewer(viewer_id=_viewer_id(viewer_id)).select_related("plan")
    page, next_cursor = _page(request, subscriptions)
    return JsonResponse({"items": [_subscription_json(item) for item in page], "next_cursor": next_cursor})


@service_view(scope=SCOPE_BILLING_READ, method="GET")
def viewer_payments(request: HttpRequest, viewer_id: str) -> HttpResponse:
    page, next_cursor = _page(request, payment_list_for_viewer(viewer_id=_viewer_id(viewer_id)))
    return JsonResponse({"items": [_payment_json(item) for item in page], "next_cursor": next_cursor})


def _viewer_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise BadRequest("BAD_VIEWER_ID", f"{str(value)[:40]!r} is not a viewer id (a UUID).") from exc


def _etag(entitlements: VersionedEntitlements) -> str:
    return f'"{entitlements.viewer_id}.{entitlements.version}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison, as If-None-Match asks."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _entitlements_json(entitlements: VersionedEntitlements) -> dict:
    return {
        "viewer_id": str(entitlements.viewer_id),
        "version": entitlements.version,
        "etag": _etag(entitlements),
        "entitlements": entitlements_to_json(entitlements.entitlements),
    }


def _page(request: HttpRequest, rows: QuerySet) -> tuple[list, str | None]:
    """Newest first; `cursor` is the last row's (created_at, id) from the page before."""
    try:
        limit = int(request.GET.get("limit", DEFAULT_PAGE))
    except ValueError as exc:
        raise BadRequest("BAD_LIMIT", f"limit is a whole number from 1 to {MAX_PAGE}.") from exc
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest("BAD_LIMIT", f"limit is a whole number from 1 to {MAX_PAGE}.")
    rows = rows.order_by("-created_at", "-id")
    cursor = request.GET.get("cursor")
    if cursor:
        created_at, row_id = _cursor_decode(cursor)
        rows = rows.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=row_id))
    page = list(rows[: limit + 1])
    if len(page) <= limit:
        return page, None
    page = page[:limit]
    return page, _cursor_encode(page[-1])


def _cursor_encode(row) -> str:
    raw = json.dumps([row.created_at.isoformat(), str(row.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        if len(cursor) > 200:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        if not (isinstance(created_at, str) and isinstance(row_id, str)):
            raise TypeError("a cursor holds two strings")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive")
        # In UTC here: a moment at the edge of the calendar with a far offset overflows the query.
        return moment.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("BAD_CURSOR", "cursor is a next_cursor from this list.") from exc


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _subscription_json(subscription: Subscription) -> dict:
    return {
        "id": str(subscription.id),
        "plan": subscription.plan.code,
        "status": subscription.status,
        "current_period_start": _iso(subscription.current_period_start),
        "current_period_end": _iso(subscription.current_period_end),
        "auto_renew": subscription.auto_renew,
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "canceled_at": _iso(subscription.canceled_at),
        "created_at": subscription.created_at.isoformat(),
    }


def _payment_json(payment: Payment) -> dict:
    return {
        "id": str(payment.id),
        "subscription_id": str(payment.subscription_id),
        "kind": payment.kind,
        "status": payment.status,
        "amount": str(payment.amount),
        "refunded_amount": str(payment.refunded_amount),
        "currency": payment.currency,
        "paid_at": _iso(payment.paid_at),
        "created_at": payment.created_at.isoformat(),
    }
