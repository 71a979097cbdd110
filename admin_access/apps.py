from django.apps import AppConfig


class AdminAccessConfig(AppConfig):
    name = "admin_access"
    verbose_name = "Admin access"

    def ready(self):
        # Connects the receiver that keeps form data out of axes' attempts, before the first login.
        from admin_access import handler  # noqa: F401
