"""django-q2 tasks: thin. Each is safe to run twice at once (the unique email per event, SKIP
LOCKED claims) and to kill at any point (a claimed email is tried again after its lease)."""

from billing.tasks import time_budget
from mail import retention, services


def deliver_emails() -> dict:
    """Compose the emails of new billing events, then send what is due."""
    composed = services.email_create_for_events()
    return {"composed": composed, **services.email_send_ready().as_dict()}


def send_emails() -> dict:
    return services.email_send_ready().as_dict()


def forget_mailgun_webhook_tokens() -> dict:
    """Tokens signed before the replay window are refused by their timestamp: no need to keep them."""
    return {"forgotten": services.mailgun_webhook_token_delete_expired()}


def purge_old_emails() -> int:
    return retention.email_purge_old(time_budget=time_budget())
