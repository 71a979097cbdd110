"""Billing's writes. Each service is one unit: it locks what it changes (in the order of
`billing.locks`), records an event in the same transaction, and calls YooKassa only outside a
transaction, with a key already committed to the row it is about.
"""

from billing.services.checkout import CheckoutResult, subscription_start_checkout
from billing.services.payments import (
    UnknownProviderPayment,
    payment_apply_provider_state,
    payment_create_at_provider,
    payment_mark_rejected,
    payment_refresh,
)

__all__ = [
    "CheckoutResult",
    "UnknownProviderPayment",
    "payment_apply_provider_state",
    "payment_create_at_provider",
    "payment_mark_rejected",
    "payment_refresh",
    "subscription_start_checkout",
]
