"""The inbox's recurring jobs (installed with billing's by `manage.py setup_schedules`, see
settings.SCHEDULE_PROVIDERS)."""

# name -> (task, every how many minutes)
WEBHOOKS_SCHEDULES = {
    "webhooks: close interrupted notifications": ("webhooks.tasks.close_interrupted_notifications", 5),
    "webhooks: purge old notifications": ("webhooks.tasks.purge_old_notifications", 15),
}
