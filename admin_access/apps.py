from django.apps import AppConfig


class AdminAccessConfig(AppConfig):
    name = "admin_access"
    verbose_name = "Admin access"
