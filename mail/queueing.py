"""Queueing mail's tasks from anywhere (billing's commits included)."""

from django.db import transaction
from django_q.tasks import async_task


def enqueue(func: str) -> None:
    """Queue a task without closing the caller's database connection.

    In autocommit mode django-q2's ORM broker calls close_old_connections() before it writes, which
    (with CONN_MAX_AGE=0) closes the connection under whatever the caller is still reading: a
    billing job iterating over a cursor when one of its commits asks for a delivery. Inside a
    transaction the broker leaves the connection alone, and the task row commits with it.
    """
    with transaction.atomic():
        async_task(func)
