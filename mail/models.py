"""Outgoing mail as rows: what each billing event tells its viewer, and whether it went out.

An email is rendered once, when its event is first seen, and then only sent. Its status moves
READY -> SENDING -> SENT, or back to READY for another try after a failure, or to FAILED after
the last try; SENDING holds a lease (`next_attempt_at`), after which a killed worker's email is
tried again. SKIPPED rows record events that get no email (no address, or told elsewhere).
"""

from django.db import models
from django.db.models import Q

from billing.models import BillingEvent


class EmailStatus(models.TextChoices):
    READY = "ready", "Ready to send"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (no more tries)"
    SKIPPED = "skipped", "Skipped (not sent)"


# Statuses a sender may claim, once their `next_attempt_at` has come.
CLAIMABLE_STATUSES = (EmailStatus.READY, EmailStatus.SENDING)


class Email(models.Model):
    id = models.BigAutoField(primary_key=True)
    event = models.ForeignKey(BillingEvent, on_delete=models.PROTECT, related_name="+")
    template = models.CharField(max_length=64)
    recipient = models.EmailField(blank=True)
    subject = models.CharField(max_length=255, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=EmailStatus.choices, default=EmailStatus.READY)
    skip_reason = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Sends started, the one under way included.")
    # READY: when to send. SENDING: when the claim's lease runs out and another worker may try.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True, help_text="Anymail's message_id.")
    sent_at = models.DateTimeField(null=True, blank=True)
    # What the provider's delivery tracking last said (Anymail's event type: delivered, bounced, ...).
    delivery_status = models.CharField(max_length=32, blank=True)
    delivery_detail = models.TextField(blank=True)
    delivery_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # An event yields its email once, however many dispatchers see it at the same time.
            models.UniqueConstraint(fields=["event", "template"], name="email_one_per_event_and_template"),
            models.CheckConstraint(
                condition=~Q(status__in=CLAIMABLE_STATUSES) | Q(next_attempt_at__isnull=False),
                name="email_claimable_has_next_attempt",
            ),
            models.CheckConstraint(
                condition=~Q(status=EmailStatus.SENT) | Q(sent_at__isnull=False), name="email_sent_has_sent_at"
            ),
            models.CheckConstraint(
                condition=Q(status=EmailStatus.SKIPPED) | ~Q(recipient=""), name="email_has_recipient_unless_skipped"
            ),
        ]
        indexes = [
            # The senders' queue.
            models.Index(fields=["next_attempt_at"], name="email_due", condition=Q(status__in=CLAIMABLE_STATUSES)),
            # Delivery tracking finds the email by the provider's id.
            models.Index(
                fields=["provider_message_id"], name="email_provider_message", condition=~Q(provider_message_id="")
            ),
            models.Index(fields=["-created_at", "-id"], name="email_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.template} to {self.recipient or '(nobody)'} ({self.status})"


class MailgunWebhookToken(models.Model):
    """The token of each Mailgun webhook signature accepted, kept while its timestamp is inside the
    replay window (MAILGUN_WEBHOOK_MAX_AGE_SECONDS): a signed body is acted on once. Written in the
    same transaction as the event's effect, so a body whose processing failed can come again."""

    id = models.BigAutoField(primary_key=True)
    token = models.CharField(max_length=128)
    # Mailgun's signature timestamp: past the window, the token may be forgotten.
    signed_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["token"], name="mailgun_webhook_token_once")]
        indexes = [models.Index(fields=["signed_at"], name="mailgun_webhook_token_signed")]

    def __str__(self) -> str:
        return f"{self.token} (signed {self.signed_at:%Y-%m-%d %H:%M:%S})"
