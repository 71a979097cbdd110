from django.apps import AppConfig


class SandboxAppConfig(AppConfig):
    name = "sandbox"
    verbose_name = "YooKassa sandbox"
