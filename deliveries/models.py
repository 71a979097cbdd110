"""Billing's outbox delivered to the cinema's other services (Auth first) as signed HTTP POSTs.

An `Endpoint` is a service that wants some event types; a `Delivery` is one event owed to one
endpoint (unique per pair), PENDING until the endpoint answers 2xx (DELIVERED) or the retries run
out (DEAD). A PENDING delivery's `next_attempt_at` is when it is due; claiming it pushes that time
past a lease, so a worker killed mid-request leaves it due again later: at least once. Every
attempt is kept (`DeliveryAttempt`) with what the endpoint answered.
"""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from billing.events import BillingEventType
from billing.models import BillingEvent

# Standard Webhooks' secret form: "whsec_" and the base64 of 24 to 64 random bytes.
SECRET_PATTERN = re.compile(r"whsec_[A-Za-z0-9+/]{32,88}={0,2}")


def validate_secret(value: str) -> None:
    if value and not SECRET_PATTERN.fullmatch(value):
        raise ValidationError("A Standard Webhooks secret: whsec_ followed by the base64 of 24 to 64 random bytes.")


def validate_event_types(value) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("A list of event types.")
    unknown = sorted(set(value) - set(BillingEventType.values))
    if unknown:
        raise ValidationError(f"Unknown event types: {', '.join(unknown)}.")


class Endpoint(models.Model):
    id = models.BigAutoField(primary_key=True)
    name = models.SlugField(max_length=64, unique=True)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100, validators=[validate_secret])
    # While a secret is being rotated: messages carry a signature by each (Standard Webhooks
    # allows several in one header), so the receiver may switch at any moment in between.
    previous_secret = models.CharField(max_length=100, blank=True, validators=[validate_secret])
    event_types = models.JSONField(default=list, validators=[validate_event_types])
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Named in settings (SERVICE_WEBHOOKS, AUTH_WEBHOOK_*): its url, secrets and event types are
    # the settings', written over at each sync; the admin can only disable and enable it.
    from_settings = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(enabled=True) | Q(disabled_at__isnull=False), name="endpoint_disabled_has_time"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def secrets(self) -> list[str]:
        return [secret for secret in (self.secret, self.previous_secret) if secret]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead (no more tries)"


class Delivery(models.Model):
    id = models.BigAutoField(primary_key=True)
    event = models.ForeignKey(BillingEvent, on_delete=models.PROTECT, related_name="+")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    # Copied from the event: the order per (endpoint, viewer) is checked on this table alone.
    viewer_id = models.UUIDField()
    event_type = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts started, the one under way included.")
    # PENDING: when it is due; while an attempt is under way, when that attempt's lease runs out.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # No retry is scheduled past this moment: a failure after it is the last (DEAD).
    retry_until = models.DateTimeField()
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_one_per_event_and_endpoint"),
            models.CheckConstraint(
                condition=~Q(status=DeliveryStatus.PENDING) | Q(next_attempt_at__isnull=False),
                name="delivery_pending_has_next_attempt",
            ),
            models.CheckConstraint(
                condition=~Q(status=DeliveryStatus.DELIVERED) | Q(delivered_at__isnull=False),
                name="delivery_delivered_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="delivery_due", condition=Q(status=DeliveryStatus.PENDING)),
            # "Is an earlier event of this viewer still owed to this endpoint?"
            models.Index(
                fields=["endpoint", "viewer_id", "event"],
                name="delivery_pending_per_viewer",
                condition=Q(status=DeliveryStatus.PENDING),
            ),
            models.Index(fields=["-created_at", "-id"], name="delivery_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.event_id} to {self.endpoint_id} ({self.status})"

    @property
    def message_id(self) -> str:
        """The `webhook-id`: the same on every attempt (and a replay), so the receiver dedupes."""
        return f"msg_billing_{self.event_id}_{self.endpoint_id}"


class DeliveryAttempt(models.Model):
    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts_made")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="The answer's first KiB.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.status_code or self.error[:40]} at {self.started_at:%Y-%m-%d %H:%M:%S}"
