"""The domain's errors. Each has a stable code the API layer turns into its own typed errors.

No GraphQL here: `graphql_api` maps `ErrorCode` onto its enum.
"""

from enum import StrEnum
from typing import Self


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
    # YooKassa could not be asked (no connection, rate limit): nothing was done; retry later.
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    # The request may have reached YooKassa and no usable answer came back (timeout, dropped
    # connection, HTTP 5xx): retry with the SAME idempotency key, never a new one; the answer will
    # be the same operation (what was committed, e.g. the payment, comes with the error).
    PROVIDER_OUTCOME_UNKNOWN = "provider_outcome_unknown"
    PROVIDER_REJECTED = "provider_rejected"
    PROVIDER_OBJECT_NOT_FOUND = "provider_object_not_found"
    # Never a client's doing: a status move the state machine forbids (a bug, or late news to
    # ignore), and YooKassa telling us about an object this service never made.
    ILLEGAL_TRANSITION = "illegal_transition"
    UNKNOWN_PROVIDER_OBJECT = "unknown_provider_object"


class BillingError(Exception):
    """A service's failure. `result` holds what the service committed before it failed (a payment
    under its key, its subscription, a refund), so the caller can still show it: the client then
    retries with the same key, and the answer is the same operation."""

    code: ErrorCode

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.result: dict[str, object] = {}

    def with_result(self, **committed: object) -> Self:
        """Attach rows committed before the failure (payment=, subscription=, refund=)."""
        self.result.update(committed)
        return self


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
    dropped connection, HTTP 5xx or 202): repeat it with the same Idempotence-Key.

    A ProviderUnavailable for the callers that only retry, with its own code for clients, who must
    retry with the same key (PROVIDER_OUTCOME_UNKNOWN)."""

    code = ErrorCode.PROVIDER_OUTCOME_UNKNOWN
    outcome_known = False


class ProviderRejected(GatewayError):
    """The provider answered and refused (HTTP 4xx): nothing was done; the same request will be
    refused again."""

    code = ErrorCode.PROVIDER_REJECTED
    outcome_known = True


class ProviderObjectNotFound(ProviderRejected):
    code = ErrorCode.PROVIDER_OBJECT_NOT_FOUND


class IllegalTransition(BillingError):
    """A status change the state machine does not allow (a bug, or a late event to ignore)."""

    code = ErrorCode.ILLEGAL_TRANSITION


class UnknownProviderObject(BillingError):
    """YooKassa told us about an object this service never made (never a client's error: the
    webhook inbox records it and answers so that YooKassa stops sending it)."""

    code = ErrorCode.UNKNOWN_PROVIDER_OBJECT


class UnknownProviderPayment(UnknownProviderObject):
    """A payment this service never created."""


class UnknownProviderRefund(UnknownProviderObject):
    """A refund this service never asked for."""
