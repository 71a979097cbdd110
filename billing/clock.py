"""The one place billing reads the time. Two times, asked for by name:

- `domain_now()`: the moment billing's rules are about (renewals, dunning, expiry, refund quotes,
  periods, when a payment was paid or a subscription canceled). `moved_to(moment)` moves it for the
  code run inside it: `run_billing_jobs --as-of` and tests.
- `real_now()`: the machine's time, never moved: leases and timeouts, the janitor's windows, rows'
  ages (`created_at`/`updated_at`, retention), the provider's check schedule.

The moved moment lives in a `ContextVar`, so it is scoped to the code inside `moved_to` and cannot
outlive it (a long-running worker never carries an --as-of by mistake). A new thread starts with
the real time: work handed to one is handed its moment explicitly (`now=`), or run in `moved_to`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta

from django.utils import timezone

# How far billing's rules read ahead of (or behind) real time in this context; it goes on ticking.
_moved_by: ContextVar[timedelta] = ContextVar("billing_clock_moved_by", default=timedelta(0))


def real_now() -> datetime:
    """The machine's time: for leases, timeouts, the janitor's windows and rows' ages."""
    return timezone.now()


def domain_now() -> datetime:
    """The moment billing's rules are about: real time, unless moved for the code in `moved_to`."""
    return real_now() + _moved_by.get()


@contextmanager
def moved_to(moment: datetime) -> Iterator[None]:
    """Billing's rules read `moment` now, and go on ticking from there, for the code run inside."""
    token = _moved_by.set(moment - real_now())
    try:
        yield
    finally:
        _moved_by.reset(token)
