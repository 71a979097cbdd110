"""YooKassa's (and billing's own) reason codes, as a viewer would say them."""

PAYMENT_REASONS = {
    "3d_secure_failed": "the card's 3-D Secure check was not passed",
    "call_issuer": "your bank declined the payment; your bank can tell you why",
    "canceled_by_merchant": "the payment was canceled",
    "card_expired": "the card has expired",
    "country_forbidden": "the card cannot pay from this country",
    "expired_on_capture": "the payment was not completed in time",
    "expired_on_confirmation": "the payment was not completed in time",
    "fraud_suspected": "the payment was blocked as suspicious",
    "general_decline": "the payment was declined",
    "identification_required": "the payment needs an identified wallet",
    "insufficient_funds": "there was not enough money on the card",
    "internal_timeout": "the payment service did not answer in time",
    "invalid_card_number": "the card number was not accepted",
    "invalid_csc": "the card's security code (CVC) was not accepted",
    "issuer_unavailable": "your bank could not be reached",
    "payment_method_limit_exceeded": "the card's spending limit was reached",
    "payment_method_restricted": "payments with this card are restricted",
    "permission_revoked": "automatic payments with this card were switched off",
    "unsupported_mobile_operator": "this mobile operator is not supported",
    "rejected_by_provider": "the payment service refused the payment",
    "never_reached_provider": "the payment could not be started",
}
REFUND_REASONS = {
    "yoo_money_account_closed": "the wallet the money would go back to is closed",
    "insufficient_funds": "the payment service could not send the money back",
    "general_decline": "the payment service declined the refund",
    "rejected_by_payee": "the refund was declined",
    "rejected_by_timeout": "the refund took too long and was stopped",
    "rejected_by_provider": "the payment service refused the refund",
    "never_reached_provider": "the refund could not be started",
}


def payment_reason(code: str) -> str:
    return PAYMENT_REASONS.get(code, "the payment was declined")


def refund_reason(code: str) -> str:
    return REFUND_REASONS.get(code, "the payment service declined the refund")
