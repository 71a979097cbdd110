"""Queueing the delivery tasks from anywhere (billing's commits included)."""

from django.db import transaction
from django_q.tasks import async_task


def enqueue(func: str) -> None:
    """Queue a task inside a transaction, so django-q2's ORM broker leaves the caller's connection
    open (mail/queueing.py tells why)."""
    with transaction.atomic():
        async_task(func)
