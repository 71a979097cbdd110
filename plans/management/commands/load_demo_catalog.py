from django.core.management.base import BaseCommand

from plans.demo import plan_load_demo_catalog


class Command(BaseCommand):
    help = "Create or refresh the demo plan catalog (idempotent)."

    def handle(self, *args, **options) -> None:
        for plan in plan_load_demo_catalog():
            self.stdout.write(f"plan {plan.code}: {plan}")
