"""The recurring jobs and how often they run (django-q2 schedules, created by a command).

Other apps list their own jobs the same way; `settings.SCHEDULE_PROVIDERS` names each list and
the prefix its schedules' names carry, so billing installs them without importing those apps.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils.module_loading import import_string
from django_q.models import Schedule

# name -> (task, every how many minutes)
BILLING_SCHEDULES = {
    "billing: renew due subscriptions": ("billing.tasks.renew_due_subscriptions", 5),
    "billing: retry past-due subscriptions": ("billing.tasks.retry_past_due_subscriptions", 15),
    "billing: expire subscriptions": ("billing.tasks.expire_subscriptions", 5),
    "billing: reconcile payments and refunds": ("billing.tasks.reconcile_payments_and_refunds", 5),
    "billing: record renewal notices": ("billing.tasks.record_renewal_notices", 60),
    "billing: purge old events and client requests": ("billing.tasks.purge_old_records", 15),
}


def schedules_wanted() -> dict[str, dict[str, tuple[str, int]]]:
    """Each prefix of `settings.SCHEDULE_PROVIDERS` with the schedules listed under it."""
    wanted = {}
    for prefix, dotted_path in settings.SCHEDULE_PROVIDERS.items():
        schedules = import_string(dotted_path)
        strays = [name for name in schedules if not name.startswith(prefix)]
        if strays:
            raise ImproperlyConfigured(f"{dotted_path}: {strays} do not start with {prefix!r}.")
        wanted[prefix] = schedules
    return wanted


def schedules_install() -> list[Schedule]:
    """Create or update the schedules by name, and remove those of each prefix no longer listed;
    running it again changes nothing."""
    installed = []
    with transaction.atomic():
        for prefix, schedules in schedules_wanted().items():
            for name, (func, minutes) in schedules.items():
                schedule, _ = Schedule.objects.update_or_create(
                    name=name,
                    defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
                )
                installed.append(schedule)
            Schedule.objects.filter(name__startswith=prefix).exclude(name__in=schedules).delete()
    return installed
