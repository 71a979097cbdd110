from functools import cached_property

from django.db import models
from django.db.models import Q


class NotificationOutcome(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    DUPLICATE = "duplicate", "Duplicate (nothing to do)"
    IGNORED = "ignored", "Ignored"
    REJECTED = "rejected", "Rejected"
    DEFERRED = "deferred", "Deferred (YooKassa will redeliver)"
    FAILED = "failed", "Failed (error recorded; YooKassa will redeliver)"


class YooKassaNotification(models.Model):
    """The inbox: every notification from YooKassa's addresses as it came, and what became of it.

    Those from anywhere else are only counted (UntrustedNotificationTally)."""

    id = models.BigAutoField(primary_key=True)
    received_at = models.DateTimeField(auto_now_add=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    trusted_source = models.BooleanField(default=False)
    raw_body = models.TextField(blank=True)
    event = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    payment = models.ForeignKey(
        "billing.Payment", on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications"
    )
    outcome = models.CharField(max_length=16, choices=NotificationOutcome.choices, default=NotificationOutcome.RECEIVED)
    detail = models.TextField(blank=True, help_text="Why it was ignored or rejected, or what it changed.")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["object_id"], name="notification_object"),
            models.Index(fields=["-received_at"], name="notification_recent"),
            # The janitor finds interrupted ones without reading the whole inbox.
            models.Index(
                fields=["received_at"],
                name="notification_unfinished",
                condition=Q(outcome=NotificationOutcome.RECEIVED),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event or 'notification'} {self.object_id} ({self.outcome})"


class UntrustedNotificationTally(models.Model):
    """Notifications from outside YooKassa's networks: per source network and time window, how
    many came. Written with one upsert per request, so a flood grows one counter, not the inbox.
    Only the first YOOKASSA_UNTRUSTED_TRACKED_NETWORKS networks of a window get rows of their own;
    every later one is counted in the window's OTHER_NETWORKS row."""

    id = models.BigAutoField(primary_key=True)
    # An IPv4 address as a /32, an IPv6 address by its /64 (one host owns a whole /64), "unknown",
    # or "other" (the networks past the tracked ones).
    source_network = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    received = models.PositiveBigIntegerField(default=0, help_text="Notifications in this window.")
    over_limit = models.PositiveBigIntegerField(default=0, help_text="Of these, answered 429 (past the rate limit).")
    bytes_received = models.PositiveBigIntegerField(default=0, help_text="Their bodies' sizes added up.")

    class Meta:
        ordering = ["-window_start", "source_network"]
        constraints = [
            models.UniqueConstraint(fields=["source_network", "window_start"], name="untrusted_tally_one_per_window")
        ]
        indexes = [models.Index(fields=["window_start"], name="untrusted_tally_window")]
        verbose_name = "untrusted notification tally"
        verbose_name_plural = "untrusted notification tallies"

    def __str__(self) -> str:
        return f"{self.source_network} from {self.window_start:%Y-%m-%d %H:%M:%S}: {self.received}"

    @cached_property
    def sample(self) -> "UntrustedNotificationSample | None":
        """The first body's start (none for the "other" row, nor before it was written)."""
        return UntrustedNotificationSample.objects.filter(
            source_network=self.source_network, window_start=self.window_start
        ).first()

    @property
    def sample_body(self) -> str:
        return self.sample.body if self.sample else ""

    @property
    def sample_remote_addr(self) -> str | None:
        return self.sample.remote_addr if self.sample else None


class UntrustedNotificationSample(models.Model):
    """The start of the first body from a tracked source network in a window: written once, in a
    table of its own, so that the tally's hot row (rewritten on every request) stays small."""

    id = models.BigAutoField(primary_key=True)
    source_network = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    remote_addr = models.GenericIPAddressField(null=True, blank=True, help_text="The first one's address.")
    body = models.TextField(blank=True, help_text="The start of the first one's body.")

    class Meta:
        ordering = ["-window_start", "source_network"]
        constraints = [
            models.UniqueConstraint(fields=["source_network", "window_start"], name="untrusted_sample_one_per_window")
        ]
        indexes = [models.Index(fields=["window_start"], name="untrusted_sample_window")]
        verbose_name = "untrusted notification sample"

    def __str__(self) -> str:
        return f"{self.source_network} from {self.window_start:%Y-%m-%d %H:%M:%S}"
