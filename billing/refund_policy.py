"""How much a viewer gets back for a paid period: the product's refund rule, as one pure function.

- Within the first `full_refund_days` times 24 hours of the period (counted from the moment it
  started, not in calendar days): everything still refundable.
- After that: the unused whole days of the period, pro rata of the amount actually paid (not
  today's price, nor what is left after earlier refunds). Days are calendar days in `tz` (the
  service passes settings.TIME_ZONE, so that setting decides where a day begins); the day the period
  started (the day of payment) and today both count as used.
- Rounded down to the kopeck, and never more than what is still refundable (paid minus refunded).
- Nothing once the period is over.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import ROUND_DOWN
from enum import StrEnum

from billing.money import CENT, Money


class RefundRule(StrEnum):
    FULL = "full"  # within the first days of the period
    PRO_RATA = "pro_rata"  # the unused whole days
    NOTHING_LEFT = "nothing_left"  # no unused day, or all of it refunded already


@dataclass(frozen=True)
class RefundQuote:
    amount: Money
    rule: RefundRule
    period_end: datetime
    period_days: int
    unused_days: int

    @property
    def refundable(self) -> bool:
        return self.amount.amount > 0


def refund_quote(
    *,
    paid: Money,
    already_refunded: Money,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
    full_refund_days: int,
    tz: tzinfo,
) -> RefundQuote:
    if period_end <= period_start:
        raise ValueError("A period ends after it starts.")
    if already_refunded > paid:
        raise ValueError("More was refunded than paid.")
    refundable = paid - already_refunded
    first_day = period_start.astimezone(tz).date()
    period_days = (period_end.astimezone(tz).date() - first_day).days
    used_days = min(max((now.astimezone(tz).date() - first_day).days + 1, 0), period_days)
    unused_days = period_days - used_days

    if now >= period_end:
        rule, amount = RefundRule.NOTHING_LEFT, Money.zero(paid.currency)
    elif now < period_start + timedelta(days=full_refund_days):
        rule, amount = RefundRule.FULL, refundable
    else:
        pro_rata = Money.zero(paid.currency)
        if unused_days:  # none, and no days to divide by, in a period within one day (24 h over a DST change)
            share = (paid.amount * unused_days / period_days).quantize(CENT, rounding=ROUND_DOWN)
            pro_rata = Money(share, paid.currency)
        rule, amount = RefundRule.PRO_RATA, min(pro_rata, refundable)
    if amount.amount <= 0:
        rule, amount = RefundRule.NOTHING_LEFT, Money.zero(paid.currency)
    return RefundQuote(
        amount=amount, rule=rule, period_end=period_end, period_days=period_days, unused_days=unused_days
    )
