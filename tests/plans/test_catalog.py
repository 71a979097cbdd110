from decimal import Decimal

import pytest
from django.db import IntegrityError

from plans.demo import DEMO_PLANS, plan_load_demo_catalog
from plans.models import Plan
from plans.selectors import plan_list_active

pytestmark = pytest.mark.django_db


def test_demo_catalog_loads_once_however_often_it_runs():
    plan_load_demo_catalog()

    plan_load_demo_catalog()

    assert Plan.objects.count() == len(DEMO_PLANS)


def test_active_plans_come_in_display_order_without_inactive_ones():
    plan_load_demo_catalog()
    Plan.objects.filter(code="premium-monthly").update(is_active=False)

    assert [plan.code for plan in plan_list_active()] == ["basic-monthly", "premium-yearly"]


@pytest.mark.parametrize(
    "fields",
    [{"price": Decimal("0.00")}, {"currency": "rub"}, {"period_count": 0}, {"period_unit": "week"}],
)
def test_the_database_refuses_a_broken_plan(fields):
    with pytest.raises(IntegrityError):
        Plan.objects.create(**({"code": "broken", "name": "Broken", "price": Decimal("1.00")} | fields))
