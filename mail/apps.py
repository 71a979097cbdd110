from django.apps import AppConfig


class MailConfig(AppConfig):
    name = "mail"
    verbose_name = "Notification emails"

    def ready(self) -> None:
        # Listens to billing's outbox and to Anymail's delivery tracking; billing knows nothing of it.
        from mail import receivers  # noqa: F401
