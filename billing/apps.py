from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # The listeners' check, the settings-changed hook, the entitlements' follow-up of plans' saves.
        from billing import event_listeners, gateway, plan_changes  # noqa: F401
