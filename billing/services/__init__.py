"""Billing's writes. Each service is one unit: it locks what it changes (in the order of
`billing.locks`), records an event in the same transaction, and calls YooKassa only outside a
transaction, with a key already committed to the row it is about.
"""

from billing.errors import UnknownProviderPayment, UnknownProviderRefund
from billing.services.auto_renew import payment_method_remove, subscription_set_auto_renew
from billing.services.cancellation import CancelMode, CancelResult, subscription_cancel
from billing.services.checkout import CheckoutResult, subscription_start_checkout
from billing.services.operator_actions import payment_refund_by_operator, subscription_cancel_with_refund_by_operator
from billing.services.payments import (
    payment_apply_provider_state,
    payment_close_unsent,
    payment_create_at_provider,
    payment_mark_rejected,
    payment_refresh,
)
from billing.services.refund_quotes import subscription_refund_quote
from billing.services.refunds import (
    refund_apply_provider_state,
    refund_close_unsent,
    refund_create_at_provider,
    refund_mark_rejected,
    refund_open,
    refund_refresh,
)

__all__ = [
    "CancelMode",
    "CancelResult",
    "CheckoutResult",
    "UnknownProviderPayment",
    "UnknownProviderRefund",
    "payment_apply_provider_state",
    "payment_close_unsent",
    "payment_create_at_provider",
    "payment_mark_rejected",
    "payment_method_remove",
    "payment_refresh",
    "payment_refund_by_operator",
    "refund_apply_provider_state",
    "refund_close_unsent",
    "refund_create_at_provider",
    "refund_mark_rejected",
    "refund_open",
    "refund_refresh",
    "subscription_cancel",
    "subscription_cancel_with_refund_by_operator",
    "subscription_refund_quote",
    "subscription_set_auto_renew",
    "subscription_start_checkout",
]
