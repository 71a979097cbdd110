"""A plan saved (its features edited in the admin, say) changes the entitlements of everyone with
access through it: they are recomputed, and their versions bumped where they changed, in the
transaction that saves the plan. Billing listens to plans; plans know nothing of billing."""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from billing.services.entitlements import entitlements_sync_plan
from plans.models import Plan


@receiver(post_save, sender=Plan, dispatch_uid="billing.plan_saved")
def plan_saved(sender, instance: Plan, created: bool, raw: bool = False, **kwargs) -> None:
    if created or raw:
        return
    with transaction.atomic():
        entitlements_sync_plan(plan_id=instance.pk)
