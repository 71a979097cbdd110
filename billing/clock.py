"""The one clock of billing's rules, so that tests and operators can run them "as of" a moment."""

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
