from django.apps import AppConfig


class InternalApiConfig(AppConfig):
    name = "internal_api"
    verbose_name = "Internal API (the cinema's services)"
    default_auto_field = "django.db.models.BigAutoField"
