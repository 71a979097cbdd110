from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import event_listeners, gateway  # noqa: F401 - the listeners' check, the settings-changed hook
