"""Email backends standing in for a provider that misbehaves (the process boundary of sending)."""

from anymail.exceptions import AnymailRecipientsRefused
from django.core.mail.backends.base import BaseEmailBackend
from django.db.models import F
from django.utils import timezone


class DownBackend(BaseEmailBackend):
    """The provider cannot be reached."""

    def send_messages(self, email_messages):
        raise ConnectionError("Mailgun is down")


class RefusingBackend(BaseEmailBackend):
    """The provider refuses the recipient for good (Anymail raises this for rejected addresses)."""

    def send_messages(self, email_messages):
        raise AnymailRecipientsRefused("All message recipients were rejected or invalid")


class SlowBackend(BaseEmailBackend):
    """Sends, but so slowly that the lease runs out and another worker claims the email meanwhile."""

    def send_messages(self, email_messages):
        from mail.models import Email
        from mail.services import SEND_LEASE

        for message in email_messages:
            # What the other worker's claim does to the row.
            Email.objects.filter(pk=int(message.metadata["email_id"])).update(
                attempts=F("attempts") + 1, next_attempt_at=timezone.now() + SEND_LEASE
            )
        return len(email_messages)
