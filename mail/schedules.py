"""Mail's recurring jobs (installed with billing's by `manage.py setup_schedules`, see
settings.SCHEDULE_PROVIDERS). New billing events also start a delivery as soon as they commit
(mail.receivers); this run is what guarantees it."""

# name -> (task, every how many minutes)
MAIL_SCHEDULES = {
    "mail: deliver emails": ("mail.tasks.deliver_emails", 1),
    "mail: forget Mailgun webhook tokens": ("mail.tasks.forget_mailgun_webhook_tokens", 10),
    "mail: purge old emails": ("mail.tasks.purge_old_emails", 15),
}
