import strawberry
import strawberry_django
from strawberry import auto, relay

from graphql_api.common import Money
from plans import selectors
from plans.models import Plan
from plans.periods import PeriodUnit

PeriodUnitEnum = strawberry.enum(PeriodUnit, name="PeriodUnit")


@strawberry.type
class BillingPeriod:
    unit: PeriodUnitEnum
    count: int


@strawberry_django.type(Plan, name="Plan")
class PlanType(relay.Node):
    code: auto
    name: auto
    description: auto

    @strawberry_django.field(only=["price", "currency"])
    def price(self, root: Plan) -> Money:
        return Money(amount=root.price, currency=root.currency)

    @strawberry_django.field(only=["period_unit", "period_count"])
    def period(self, root: Plan) -> BillingPeriod:
        return BillingPeriod(unit=PeriodUnit(root.period_unit), count=root.period_count)


@strawberry.type
class PlanQueries:
    @strawberry_django.field(description="The plans a viewer can buy, in display order.")
    def plans(self) -> list[PlanType]:
        return selectors.plan_list_active()
