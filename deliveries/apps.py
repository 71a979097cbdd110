from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Event deliveries to services"

    def ready(self) -> None:
        # The system check of the endpoints configured in settings.
        from deliveries import checks  # noqa: F401
