from django.db import models


class NotificationOutcome(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    DUPLICATE = "duplicate", "Duplicate (nothing to do)"
    IGNORED = "ignored", "Ignored"
    REJECTED = "rejected", "Rejected"
    DEFERRED = "deferred", "Deferred (YooKassa will redeliver)"


class YooKassaNotification(models.Model):
    """The inbox: every notification as it came, trusted or not, and what became of it."""

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
        ]

    def __str__(self) -> str:
        return f"{self.event or 'notification'} {self.object_id} ({self.outcome})"
