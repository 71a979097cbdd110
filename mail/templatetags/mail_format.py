"""How the emails write money and moments: `{{ amount|money }}`, `{{ moment|day }}`, `{{ moment|moment }}`.

Moments are shown in the current time zone, which rendering sets to settings.TIME_ZONE.
"""

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format

from billing.money import Money

register = template.Library()


@register.filter
def money(value: Money) -> str:
    """299.00 RUB, 1,990.00 RUB."""
    return f"{value.amount:,.2f} {value.currency}"


@register.filter
def day(value: datetime) -> str:
    """1 February 2027."""
    return date_format(timezone.localtime(value), "j F Y")


@register.filter
def moment(value: datetime) -> str:
    """1 February 2027 at 14:05 UTC."""
    return date_format(timezone.localtime(value), r"j F Y \a\t H:i T")
