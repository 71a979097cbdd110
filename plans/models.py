import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from plans.periods import BillingPeriod, PeriodUnit

# A feature is a short slug the cinema's services understand ("hd", "4k", "offline"): it travels in
# every entitlement and in the viewer's JWT (billing.claims), so it is short and the list is small.
FEATURE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
MAX_FEATURES = 8


def validate_features(value) -> None:
    if not isinstance(value, list):
        raise ValidationError('Features are a list of short slugs, e.g. ["hd", "4k"].')
    if len(value) > MAX_FEATURES:
        raise ValidationError(f"At most {MAX_FEATURES} features.")
    for feature in value:
        if not isinstance(feature, str) or not FEATURE_PATTERN.match(feature):
            raise ValidationError(
                f"{feature!r} is not a feature: lowercase letters, digits and dashes, at most 16 characters."
            )
    if len(set(value)) != len(value):
        raise ValidationError("A feature is listed twice.")


class PlanQuerySet(models.QuerySet):
    def active(self) -> "PlanQuerySet":
        return self.filter(is_active=True)


class Plan(models.Model):
    """A subscription plan the cinema sells: a price charged once per billing period."""

    code = models.SlugField(max_length=50, unique=True, help_text="Stable identifier, e.g. 'premium-monthly'.")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    currency = models.CharField(
        max_length=3,
        default="RUB",
        validators=[RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code in capitals, e.g. RUB.")],
    )
    period_unit = models.CharField(
        max_length=5,
        choices=[(unit.value, unit.value.title()) for unit in PeriodUnit],
        default=PeriodUnit.MONTH.value,
    )
    period_count = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    features = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_features],
        help_text='What the plan lets a viewer watch, as short slugs the cinema\'s services know: ["hd", "4k"].',
    )
    is_active = models.BooleanField(default=True, help_text="Inactive plans cannot be bought.")
    position = models.PositiveIntegerField(default=0, help_text="Display order in the catalog.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gt=0), name="plan_price_positive"),
            models.CheckConstraint(condition=models.Q(period_count__gte=1), name="plan_period_count_positive"),
            models.CheckConstraint(
                condition=models.Q(period_unit__in=[unit.value for unit in PeriodUnit]),
                name="plan_period_unit_known",
            ),
            models.CheckConstraint(condition=models.Q(currency__regex=r"^[A-Z]{3}$"), name="plan_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.price} {self.currency} / {self.period})"

    @property
    def period(self) -> BillingPeriod:
        return BillingPeriod(PeriodUnit(self.period_unit), self.period_count)
