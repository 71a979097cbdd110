from datetime import UTC, datetime

import pytest

from plans.periods import BillingPeriod, PeriodUnit


def at(year, month, day, hour=12):
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        (BillingPeriod(PeriodUnit.DAY, 30), at(2026, 1, 31), at(2026, 3, 2)),
        (BillingPeriod(PeriodUnit.MONTH, 1), at(2026, 1, 15), at(2026, 2, 15)),
        (BillingPeriod(PeriodUnit.MONTH, 1), at(2026, 1, 31), at(2026, 2, 28)),
        (BillingPeriod(PeriodUnit.MONTH, 1), at(2028, 1, 31), at(2028, 2, 29)),
        (BillingPeriod(PeriodUnit.MONTH, 3), at(2026, 11, 30), at(2027, 2, 28)),
        (BillingPeriod(PeriodUnit.MONTH, 12), at(2026, 12, 31), at(2027, 12, 31)),
        (BillingPeriod(PeriodUnit.YEAR, 1), at(2028, 2, 29), at(2029, 2, 28)),
    ],
)
def test_end_after_keeps_the_calendar(period, start, end):
    assert period.end_after(start) == end


def test_a_period_lasts_at_least_one_unit():
    with pytest.raises(ValueError, match="at least one"):
        BillingPeriod(PeriodUnit.MONTH, 0)


def test_period_reads_as_words():
    assert str(BillingPeriod(PeriodUnit.MONTH, 1)) == "1 month"
    assert str(BillingPeriod(PeriodUnit.DAY, 30)) == "30 days"
