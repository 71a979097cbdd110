"""Billing's events, handed after commit to the consumers named in settings.

`BILLING_EVENT_LISTENERS` lists dotted paths of `listener(event: BillingEvent) -> None`; billing
imports none of them by name. Each runs once the transaction that recorded the event commits
(never for one that rolled back), in the process that committed it. That is good for hints such
as websocket pushes: at most once, best effort. A consumer that must see every event reads the
outbox (`BillingEvent`) instead. A listener that fails is logged; the change it was told of stands.
"""

import logging
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from billing.models import BillingEvent

logger = logging.getLogger(__name__)

EventListener = Callable[[BillingEvent], None]


def event_notify_listeners(event: BillingEvent) -> None:
    """Call every configured listener with the committed event; one's failure stops none of the others."""
    for path in settings.BILLING_EVENT_LISTENERS:
        try:
            _listener(path)(event)
        except Exception:
            logger.exception("Billing event listener %s failed on event %s (%s)", path, event.pk, event.type)


@cache
def _listener(path: str) -> EventListener:
    return import_string(path)


@checks.register()
def check_event_listeners(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A listener that cannot be imported would only show in the logs, event after event: refuse it at start."""
    errors = []
    for path in settings.BILLING_EVENT_LISTENERS:
        try:
            listener = import_string(path)
        except ImportError as exc:
            errors.append(checks.Error(f"BILLING_EVENT_LISTENERS: cannot import {path!r}: {exc}", id="billing.E001"))
            continue
        if not callable(listener):
            errors.append(checks.Error(f"BILLING_EVENT_LISTENERS: {path!r} is not callable.", id="billing.E002"))
    return errors
