"""Billing periods: a number of days, months or years, added to a moment on the calendar."""

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class PeriodUnit(StrEnum):
    DAY = "day"
    MONTH = "month"
    YEAR = "year"


@dataclass(frozen=True)
class BillingPeriod:
    unit: PeriodUnit
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("A billing period lasts at least one unit.")

    def end_after(self, start: datetime) -> datetime:
        """The moment one period after `start`; a month after 31 January is the end of February."""
        if self.unit is PeriodUnit.DAY:
            return start + timedelta(days=self.count)
        months = self.count if self.unit is PeriodUnit.MONTH else 12 * self.count
        year, month_index = divmod(start.month - 1 + months, 12)
        year += start.year
        month = month_index + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return start.replace(year=year, month=month, day=day)

    def __str__(self) -> str:
        unit = self.unit.value if self.count == 1 else f"{self.unit.value}s"
        return f"{self.count} {unit}"
