"""The payment gateway: `get_gateway()` returns the configured provider behind the port."""

from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from billing.gateway.interface import PaymentGateway
from billing.gateway.yookassa import YooKassaGateway
from billing.gateway.yookassa_client import YooKassaConfig


def yookassa_config(*, api_url: str | None = None) -> YooKassaConfig:
    """YooKassa as the settings configure it, at `api_url` when given (a sandbox elsewhere)."""
    return YooKassaConfig(
        shop_id=settings.YOOKASSA_SHOP_ID,
        secret_key=settings.YOOKASSA_SECRET_KEY,
        api_url=api_url or settings.YOOKASSA_API_URL,
        connect_timeout=settings.YOOKASSA_CONNECT_TIMEOUT,
        read_timeout=settings.YOOKASSA_READ_TIMEOUT,
        call_timeout=settings.YOOKASSA_CALL_TIMEOUT,
    )


@cache
def get_gateway() -> PaymentGateway:
    return YooKassaGateway(yookassa_config())


@receiver(setting_changed)
def _forget_gateway(*, setting: str, **kwargs) -> None:
    if setting.startswith("YOOKASSA_"):
        get_gateway.cache_clear()
