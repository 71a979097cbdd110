"""django-q2 tasks: thin. Each is safe to run twice at once (the unique delivery per event and
endpoint, SKIP LOCKED claims) and to kill at any point (a claimed delivery is due again after
its lease)."""

from billing.tasks import time_budget
from deliveries import retention, services


def deliver_events() -> dict:
    """Create the deliveries of new billing events, then send what is due."""
    created = services.delivery_create_for_events()
    return {"created": created, **services.delivery_send_due(time_budget=time_budget()).as_dict()}


def send_deliveries() -> dict:
    return services.delivery_send_due(time_budget=time_budget()).as_dict()


def purge_old_deliveries() -> int:
    return retention.delivery_purge_old(time_budget=time_budget())
