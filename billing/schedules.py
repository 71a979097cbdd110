"""The recurring jobs and how often they run (django-q2 schedules, created by a command)."""

from django.db import transaction
from django_q.models import Schedule

# name -> (task, every how many minutes)
BILLING_SCHEDULES = {
    "billing: renew due subscriptions": ("billing.tasks.renew_due_subscriptions", 5),
    "billing: retry past-due subscriptions": ("billing.tasks.retry_past_due_subscriptions", 15),
    "billing: expire subscriptions": ("billing.tasks.expire_subscriptions", 5),
    "billing: reconcile payments and refunds": ("billing.tasks.reconcile_payments_and_refunds", 5),
    "billing: record renewal notices": ("billing.tasks.record_renewal_notices", 60),
}


def schedules_install() -> list[Schedule]:
    """Create or update the schedules by name; running it again changes nothing."""
    installed = []
    with transaction.atomic():
        for name, (func, minutes) in BILLING_SCHEDULES.items():
            schedule, _ = Schedule.objects.update_or_create(
                name=name,
                defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
            )
            installed.append(schedule)
        Schedule.objects.filter(name__startswith="billing: ").exclude(name__in=BILLING_SCHEDULES).delete()
    return installed
