from decimal import Decimal

import strawberry

from billing.money import Money as DomainMoney


@strawberry.type
class Money:
    amount: Decimal = strawberry.field(description='A decimal string, e.g. "299.00".')
    currency: str = strawberry.field(description="ISO 4217 code, e.g. RUB.")

    @classmethod
    def of(cls, money: DomainMoney) -> "Money":
        return cls(amount=money.amount, currency=money.currency)
