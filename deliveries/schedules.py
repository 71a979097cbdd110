"""The deliveries' recurring jobs (installed by `manage.py setup_schedules`, see
settings.SCHEDULE_PROVIDERS). New billing events also start a run as soon as they commit
(deliveries.receivers); this one is what guarantees it, and what sends the retries when due."""

# name -> (task, every how many minutes)
DELIVERIES_SCHEDULES = {
    "deliveries: deliver billing events": ("deliveries.tasks.deliver_events", 1),
    "deliveries: purge old deliveries": ("deliveries.tasks.purge_old_deliveries", 15),
}
