"""Mailgun's delivery-tracking webhook: Anymail's view, behind checks of its own.

In order:
1. The body's shape, or 400 with a plain-text reason. Anymail reads the body without looking: a
   list as the signature block, a non-ASCII token (it HMACs `timestamp + token` encoded as ASCII),
   an `event-data` timestamp of 1e20 or "nan" (`datetime.fromtimestamp`) each crashed it into a 500.
   So the body must be a JSON object with a `signature` object of ASCII `timestamp` (digits),
   `token` and `signature`, and an `event-data` object whose fields Anymail or mail reads have the
   types Mailgun documents; no string (nor key) holds NUL, which PostgreSQL's text refuses.
2. The signature: Anymail's own check (Mailgun's HMAC-SHA256 of timestamp + token), 400 when wrong.
3. Freshness and once, or 406 (mail.services.mailgun_webhook_accept): a signature timestamp older
   than MAILGUN_WEBHOOK_MAX_AGE_SECONDS (9 hours: Mailgun retries with the original signature for
   8) or more than 5 minutes ahead is refused, and so is a token already used: the token is
   recorded in the transaction that applies the event, so a replayed body (same token, any event
   data) is refused, and a body whose processing failed (our 500, rolled back with its token) is
   accepted when Mailgun sends it again.

Why 406 for 3 and 4: Mailgun retries a webhook for hours on any answer but 200 and 406
("Not Acceptable: rejected, not retried", Mailgun's "Automatic Retries" page); a stale or
replayed signature never becomes acceptable, so a retry would be pointless. A malformed body is a
400 (Mailgun never sends one; whoever did may retry it to no avail); our own failures stay 500s,
which Mailgun retries.
"""

import json
import math
from datetime import UTC, datetime
from typing import Any

from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from django.http import HttpRequest, HttpResponse

from mail.services import MailgunWebhookVerdict, mailgun_webhook_accept

# Mailgun's event data nests about five levels; user-variables are ours and flat.
MAX_DEPTH = 16
# Mailgun's tokens have 50 characters (the column holds 128); timestamps are Unix seconds.
MAX_TOKEN_LENGTH = 128
MAX_SIGNATURE_LENGTH = 128
MAX_TIMESTAMP_DIGITS = 12
# The fields of `event-data` read by Anymail or by mail, with the one type each may have (or null).
EVENT_DATA_FIELDS: list[tuple[tuple[str, ...], type]] = [
    (("severity",), str),
    (("reason",), str),
    (("recipient",), str),
    (("message",), dict),
    (("message", "headers"), dict),
    (("message", "headers", "message-id"), str),
    (("message", "headers", "to"), str),
    (("user-variables",), dict),
    (("delivery-status",), dict),
    (("delivery-status", "description"), str),
    (("delivery-status", "message"), str),
    (("reject",), dict),
    (("reject", "reason"), str),
    (("client-info",), dict),
    (("client-info", "user-agent"), str),
]


class MalformedTracking(ValueError):
    """The body is not a Mailgun tracking webhook; the message says what is wrong with it."""


class MailgunTrackingView(MailgunTrackingWebhookView):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            signature = _signature_block(request)
        except MalformedTracking as problem:
            return HttpResponse(str(problem), status=400, content_type="text/plain")
        self.run_validators(request)  # Anymail: basic auth if configured, and the signature
        try:
            events = self.parse_events(request)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError):
            # What the shape check let through and Anymail still cannot read is no Mailgun body either.
            return HttpResponse("Anymail cannot read this tracking event.", status=400, content_type="text/plain")
        verdict = mailgun_webhook_accept(
            token=signature["token"],
            signed_at=datetime.fromtimestamp(int(signature["timestamp"]), UTC),
            apply=lambda: self._send_signals(events),
        )
        if verdict is MailgunWebhookVerdict.STALE:
            return _not_acceptable("The webhook's signature timestamp is outside the replay window.")
        if verdict is MailgunWebhookVerdict.REPLAYED:
            return _not_acceptable("The webhook's signature token was already used.")
        return HttpResponse()

    def _send_signals(self, events: list) -> None:
        for event in events:
            self.signal.send(sender=self.__class__, event=event, esp_name=self.esp_name)


def _not_acceptable(reason: str) -> HttpResponse:
    return HttpResponse(reason, status=406, content_type="text/plain")


def _signature_block(request: HttpRequest) -> dict:
    """The body's `signature` object, once the whole body is known to be shaped as Mailgun's."""
    if request.content_type != "application/json":
        raise MalformedTracking("Mailgun tracking webhooks are JSON: Content-Type: application/json.")
    try:
        body = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise MalformedTracking("The body is not JSON (UTF-8, of sane depth and numbers).") from error
    if not isinstance(body, dict):
        raise MalformedTracking("The body must be a JSON object.")
    _check_depth_and_text(body)
    signature = body.get("signature")
    if not isinstance(signature, dict):
        raise MalformedTracking("'signature' must be an object.")
    _check_signature(signature)
    event_data = body.get("event-data")
    if not isinstance(event_data, dict):
        raise MalformedTracking("'event-data' must be an object.")
    _check_event_data(event_data)
    return signature


def _check_depth_and_text(body: dict) -> None:
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            # PostgreSQL's text cannot hold NUL (the message id and the description are stored):
            # Mailgun never sends one.
            raise MalformedTracking("The body's strings must not contain NUL (\\u0000).")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            raise MalformedTracking(f"The body is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(value, dict):
            pending.extend((key, depth) for key in value)
        pending.extend((child, depth + 1) for child in children)


def _check_signature(signature: dict) -> None:
    timestamp = signature.get("timestamp")
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not (
        isinstance(timestamp, str)
        and timestamp.isascii()
        and timestamp.isdigit()
        and len(timestamp) <= MAX_TIMESTAMP_DIGITS
    ):
        raise MalformedTracking("'signature.timestamp' must be Unix seconds in ASCII digits.")
    for name, limit in (("token", MAX_TOKEN_LENGTH), ("signature", MAX_SIGNATURE_LENGTH)):
        value = signature.get(name)
        if not (isinstance(value, str) and value.isascii() and value.isprintable() and 0 < len(value) <= limit):
            raise MalformedTracking(f"'signature.{name}' must be 1 to {limit} printable ASCII characters.")


def _check_event_data(event_data: dict) -> None:
    if not isinstance(event_data.get("event"), str):
        raise MalformedTracking("'event-data.event' must be a string.")
    timestamp = event_data.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or not _is_a_moment(timestamp):
        raise MalformedTracking("'event-data.timestamp' must be a number of Unix seconds.")
    for path, kind in EVENT_DATA_FIELDS:
        value = _at(event_data, path)
        if value is not None and not isinstance(value, kind):
            raise MalformedTracking(f"'event-data.{'.'.join(path)}' must be a {kind.__name__} or absent.")
    email_id = _at(event_data, ("user-variables", "email_id"))
    if email_id is not None and not (isinstance(email_id, str) and email_id.isascii() and email_id.isdigit()):
        # Ours, sent with each email as the row's id ("²" is a digit to `isdigit`, but no id).
        raise MalformedTracking("'event-data.user-variables.email_id' must be an email id in ASCII digits.")


def _is_a_moment(timestamp: float) -> bool:
    if isinstance(timestamp, float) and not math.isfinite(timestamp):
        return False
    try:
        datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return False
    return True


def _at(data: dict, path: tuple[str, ...]) -> Any:
    """The value at `path`, or None where a step is missing (or not an object: checked at its own path)."""
    value: Any = data
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
