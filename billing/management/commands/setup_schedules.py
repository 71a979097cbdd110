from django.core.management.base import BaseCommand

from billing.schedules import schedules_install


class Command(BaseCommand):
    help = (
        "Create or update the django-q2 schedules of the recurring jobs of every app in "
        "settings.SCHEDULE_PROVIDERS (billing's, mail's), and remove retired ones (idempotent)."
    )

    def handle(self, *args, **options) -> None:
        for schedule in schedules_install():
            self.stdout.write(f"{schedule.name}: {schedule.func} every {schedule.minutes} min")
