"""The refund rule: full in the first 7 days, then unused whole days pro rata, rounded down."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import Money
from billing.refund_policy import RefundRule, refund_quote
from plans.periods import BillingPeriod, PeriodUnit

MOSCOW = ZoneInfo("Europe/Moscow")
PAID = Money.of("299.00", "RUB")
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def quote(*, now, start=START, end=None, paid=PAID, refunded=None, tz=UTC, full_refund_days=7):
    return refund_quote(
        paid=paid,
        already_refunded=refunded or Money.zero(paid.currency),
        period_start=start,
        period_end=end or start + timedelta(days=30),
        now=now,
        full_refund_days=full_refund_days,
        tz=tz,
    )


def test_three_days_after_payment_everything_comes_back():
    result = quote(now=START + timedelta(days=3))

    assert result.rule is RefundRule.FULL
    assert result.amount == PAID


def test_ten_days_after_payment_nineteen_thirtieths_come_back_rounded_down():
    result = quote(now=START + timedelta(days=10))

    # Days 0..10 are used (the day of payment and today included): 11 used, 19 unused.
    assert result.rule is RefundRule.PRO_RATA
    assert result.unused_days == 19
    assert result.amount == Money.of("189.36", "RUB")  # 299 * 19 / 30 = 189.3666...


def test_on_the_last_day_of_the_period_nothing_comes_back():
    result = quote(now=START + timedelta(days=29, hours=11))

    assert result.rule is RefundRule.NOTHING_LEFT
    assert result.amount == Money.zero("RUB")
    assert result.refundable is False


def test_after_the_period_nothing_comes_back():
    assert quote(now=START + timedelta(days=31)).rule is RefundRule.NOTHING_LEFT


def test_the_full_refund_window_ends_exactly_seven_days_after_the_start():
    assert quote(now=START + timedelta(days=7) - timedelta(seconds=1)).rule is RefundRule.FULL
    assert quote(now=START + timedelta(days=7)).rule is RefundRule.PRO_RATA


def test_the_window_is_configurable():
    assert quote(now=START + timedelta(days=3), full_refund_days=1).rule is RefundRule.PRO_RATA


def test_a_monthly_period_uses_its_real_number_of_days():
    february = BillingPeriod(PeriodUnit.MONTH, 1)
    start = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)

    result = quote(start=start, end=february.end_after(start), now=start + timedelta(days=10))

    assert result.period_days == 28
    assert result.unused_days == 17
    assert result.amount == Money.of("181.53", "RUB")  # 299 * 17 / 28 = 181.5357...


def test_what_was_refunded_already_is_not_refunded_again():
    assert quote(now=START + timedelta(days=1), refunded=Money.of("100.00", "RUB")).amount == Money.of("199.00", "RUB")
    assert quote(now=START + timedelta(days=10), refunded=Money.of("150.00", "RUB")).amount == Money.of("149.00", "RUB")
    assert quote(now=START + timedelta(days=1), refunded=PAID).rule is RefundRule.NOTHING_LEFT


def test_days_are_counted_on_the_cinemas_calendar():
    paid_late_evening_utc = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)  # 2 March, 01:30 in Moscow
    now = datetime(2026, 3, 11, 0, 30, tzinfo=UTC)  # 11 March in both

    in_utc = quote(start=paid_late_evening_utc, now=now, tz=UTC)
    in_moscow = quote(start=paid_late_evening_utc, now=now, tz=MOSCOW)

    assert in_utc.unused_days == 19  # 1..11 March used
    assert in_moscow.unused_days == 20  # 2..11 March used


@pytest.mark.parametrize("now", [timedelta(hours=23), timedelta(days=8)], ids=["during", "after"])
def test_a_period_within_one_calendar_day_gives_nothing_back(now):
    """24 hours from 00:30 on the day New York's clocks go back end at 23:30 the same day."""
    new_york = ZoneInfo("America/New_York")
    start = datetime(2025, 11, 2, 4, 30, tzinfo=UTC)  # 00:30 EDT

    result = quote(start=start, end=start + timedelta(hours=24), now=start + now, tz=new_york, full_refund_days=0)

    assert result.period_days == 0
    assert result.rule is RefundRule.NOTHING_LEFT
    assert result.amount == Money.zero("RUB")


def test_nonsense_input_is_refused():
    with pytest.raises(ValueError, match="ends after it starts"):
        quote(now=START, end=START)
    with pytest.raises(ValueError, match="More was refunded"):
        quote(now=START, refunded=Money.of("300.00", "RUB"))


# --- properties ---------------------------------------------------------------------------------

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999.99"), places=2)
days = st.integers(min_value=1, max_value=400)
zones = st.sampled_from([UTC, MOSCOW, ZoneInfo("Asia/Vladivostok"), ZoneInfo("America/New_York")])
starts = st.builds(
    lambda day, seconds: datetime.combine(day, time(), UTC) + timedelta(seconds=seconds),
    st.dates(min_value=date(2025, 1, 1), max_value=date(2030, 12, 31)),
    st.integers(min_value=0, max_value=86_399),
)


@st.composite
def situations(draw):
    paid = Money(draw(amounts), "RUB")
    refunded = Money(draw(st.decimals(min_value=Decimal(0), max_value=paid.amount, places=2)), "RUB")
    start = draw(starts)
    end = start + timedelta(days=draw(days), seconds=draw(st.integers(0, 86_399)))
    now = start + timedelta(seconds=draw(st.integers(-86_400, int((end - start).total_seconds()) + 86_400)))
    return {"paid": paid, "refunded": refunded, "start": start, "end": end, "now": now, "tz": draw(zones)}


@given(situations())
def test_never_more_than_is_still_refundable_and_never_negative(s):
    result = quote(**s)

    assert Money.zero("RUB") <= result.amount <= s["paid"] - s["refunded"]
    assert result.amount.amount == result.amount.amount.quantize(Decimal("0.01"))


def calendar(s) -> tuple[list[date], list[date]]:
    """The period's days on the calendar of `tz`, and the unused ones among them, counted one by one:
    from the day it starts to the day before the day it ends; used up to and including today."""
    first, end, today = (s[moment].astimezone(s["tz"]).date() for moment in ("start", "end", "now"))
    period = []
    while first + timedelta(days=len(period)) < end:
        period.append(first + timedelta(days=len(period)))
    return period, [day for day in period if day > today]


@given(situations())
def test_the_days_are_the_periods_calendar_days_and_those_after_today(s):
    period, unused = calendar(s)

    result = quote(**s)

    assert (result.period_days, result.unused_days) == (len(period), len(unused))


@given(situations())
def test_pro_rata_is_rounded_down_from_the_unused_share(s):
    period, unused = calendar(s)

    result = quote(**s)

    if result.rule is RefundRule.PRO_RATA:
        exact = s["paid"].amount * len(unused) / len(period)
        assert result.amount.amount <= exact
        assert exact - result.amount.amount < Decimal("0.01") or result.amount == s["paid"] - s["refunded"]


@given(situations())
def test_once_the_period_has_started_today_is_used(s):
    result = quote(**s)

    if s["now"] >= s["start"]:
        assert result.unused_days <= result.period_days - 1


@given(situations())
def test_pro_rata_is_of_the_amount_paid_not_of_what_is_left_to_refund(s):
    """Earlier refunds cap the refund; they do not shrink the share the unused days are worth."""
    never_refunded = quote(**(s | {"refunded": Money.zero("RUB")}))

    result = quote(**s)

    assert result.amount == min(never_refunded.amount, s["paid"] - s["refunded"])


@given(situations(), st.integers(min_value=1, max_value=40 * 86_400))
def test_waiting_never_gives_back_more(s, later_seconds):
    earlier = quote(**s)
    later = quote(**(s | {"now": s["now"] + timedelta(seconds=later_seconds)}))

    assert later.amount <= earlier.amount


@given(situations())
def test_the_first_week_gives_back_everything_left(s):
    result = quote(**s)

    if s["now"] < s["start"] + timedelta(days=7) and s["now"] < s["end"]:
        assert result.amount == s["paid"] - s["refunded"]
