"""The demo catalog the local run starts with."""

from decimal import Decimal

from plans.models import Plan
from plans.periods import PeriodUnit

DEMO_PLANS = [
    {
        "code": "basic-monthly",
        "features": ["hd"],
        "name": "Basic",
        "description": "The whole catalog in HD on one screen.",
        "price": Decimal("299.00"),
        "period_unit": PeriodUnit.MONTH,
        "period_count": 1,
        "position": 10,
    },
    {
        "code": "premium-monthly",
        "features": ["hd", "4k", "offline"],
        "name": "Premium",
        "description": "4K and premieres on up to four screens.",
        "price": Decimal("599.00"),
        "period_unit": PeriodUnit.MONTH,
        "period_count": 1,
        "position": 20,
    },
    {
        "code": "premium-yearly",
        "features": ["hd", "4k", "offline"],
        "name": "Premium, yearly",
        "description": "Premium for a year, two months free.",
        "price": Decimal("5990.00"),
        "period_unit": PeriodUnit.YEAR,
        "period_count": 1,
        "position": 30,
    },
]


def plan_load_demo_catalog() -> list[Plan]:
    """Create or refresh the demo plans; running it twice changes nothing."""
    plans = []
    for fields in DEMO_PLANS:
        defaults = {key: value for key, value in fields.items() if key != "code"}
        plan, _ = Plan.objects.update_or_create(code=fields["code"], defaults={**defaults, "currency": "RUB"})
        plans.append(plan)
    return plans
