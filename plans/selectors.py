from django.db.models import QuerySet

from plans.models import Plan


def plan_list_active() -> QuerySet[Plan]:
    """The catalog viewers can buy from, in display order."""
    return Plan.objects.active().order_by("position", "id")
