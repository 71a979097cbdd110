"""The domain's errors. Each has a stable code the API layer turns into its own typed errors.

No GraphQL here: `graphql_api` maps `ErrorCode` onto its enum.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_INPUT = "invalid_input"
    PLAN_NOT_FOUND = "plan_not_found"
    INVALID_RETURN_URL = "invalid_return_url"
    EMAIL_REQUIRED = "email_required"
    ALREADY_SUBSCRIBED = "already_subscribed"
    PAYMENT_IN_PROGRESS = "payment_in_progress"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    NOT_FOUND = "not_found"
    SUBSCRIPTION_NOT_ACTIVE = "subscription_not_active"
    ALREADY_CANCELED = "already_canceled"
    NOT_REFUNDABLE = "not_refundable"
    REFUND_IN_PROGRESS = "refund_in_progress"
    REFUND_CANCELED = "refund_canceled"
    NO_PAYMENT_METHOD = "no_payment_method"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_REJECTED = "provider_rejected"
    PROVIDER_OBJECT_NOT_FOUND = "provider_object_not_found"


class BillingError(Exception):
    code: ErrorCode

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(BillingError):
    code = ErrorCode.INVALID_INPUT


class PlanNotFound(BillingError):
    code = ErrorCode.PLAN_NOT_FOUND


class InvalidReturnUrl(BillingError):
    code = ErrorCode.INVALID_RETURN_URL


class EmailRequired(BillingError):
    code = ErrorCode.EMAIL_REQUIRED


class AlreadySubscribed(BillingError):
    code = ErrorCode.ALREADY_SUBSCRIBED


class PaymentInProgress(BillingError):
    code = ErrorCode.PAYMENT_IN_PROGRESS


class IdempotencyKeyReused(BillingError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED


class NotFound(BillingError):
    code = ErrorCode.NOT_FOUND


class SubscriptionNotActive(BillingError):
    code = ErrorCode.SUBSCRIPTION_NOT_ACTIVE


class AlreadyCanceled(BillingError):
    code = ErrorCode.ALREADY_CANCELED


class NotRefundable(BillingError):
    code = ErrorCode.NOT_REFUNDABLE


class RefundQuoteChanged(NotRefundable):
    """The refund is no longer what the operator confirmed (time passed, or money moved)."""


class RefundInProgress(BillingError):
    code = ErrorCode.REFUND_IN_PROGRESS


class RefundCanceled(BillingError):
    """YooKassa declined the refund: no money went back and the subscription is as it was."""

    code = ErrorCode.REFUND_CANCELED


class NoPaymentMethod(BillingError):
    code = ErrorCode.NO_PAYMENT_METHOD


class GatewayError(BillingError):
    """A call to the payment provider did not give the answer asked for.

    `outcome_known` says whether we know what happened at the provider. When it is False the
    operation may or may not have been carried out: repeat it with the same Idempotence-Key, or
    look the object up, but never start it again under a new key.
    """

    outcome_known: bool = True

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        provider_code: str | None = None,
        parameter: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.provider_code = provider_code
        self.parameter = parameter
        self.retry_after = retry_after


class ProviderUnavailable(GatewayError):
    """The provider could not be asked (no connection, rate limit): nothing was done, try again."""

    code = ErrorCode.PROVIDER_UNAVAILABLE
    outcome_known = True


class ProviderOutcomeUnknown(ProviderUnavailable):
    """The request may have reached the provider but no usable answer came back (timeout,
    dropped connection, HTTP 5xx or 202): repeat it with the same Idempotence-Key."""

    outcome_known = False


class ProviderRejected(GatewayError):
    """The provider answered and refused (HTTP 4xx): nothing was done; the same request will be
    refused again."""

    code = ErrorCode.PROVIDER_REJECTED
    outcome_known = True


class ProviderObjectNotFound(ProviderRejected):
    code = ErrorCode.PROVIDER_OBJECT_NOT_FOUND


class UnknownProviderPayment(Exception):
    """YooKassa told us about a payment this service never created (never a client's error: the
    webhook inbox records it and answers so that YooKassa stops sending it)."""


class UnknownProviderRefund(Exception):
    """YooKassa told us about a refund this service never asked for (as UnknownProviderPayment)."""
