"""The one clock of billing's rules, so that tests and operators can run them "as of" a moment.

`travel_to(moment)` shifts billing's clock (in this process) so that it reads `moment` now and
goes on ticking from there. Rows' own `created_at`/`updated_at` keep the real time.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.utils import timezone

_offset = timedelta(0)


def now() -> datetime:
    return timezone.now() + _offset


@contextmanager
def travel_to(moment: datetime) -> Iterator[None]:
    global _offset  # one clock per process, on purpose
    previous = _offset
    _offset = moment - timezone.now()
    try:
        yield
    finally:
        _offset = previous
