"""django-q2 tasks of the inbox: thin, each safe to run twice at once and to kill at any point."""

from billing.tasks import time_budget
from webhooks import retention


def close_interrupted_notifications() -> int:
    return retention.notification_close_interrupted()


def purge_old_notifications() -> dict:
    return retention.notification_purge_old(time_budget=time_budget())
