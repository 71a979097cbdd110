"""The payment gateway port: what billing asks of a payment provider, in billing's own terms.

Every operation that creates or changes something at the provider takes the caller's
`idempotence_key`, which the caller has committed to its own row before calling: a retry of
the call, after a crash or a timeout, sends the same key and cannot charge twice.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from billing.money import Money


class ProviderNotificationEvent(StrEnum):
    """The `event` of a YooKassa notification this service acts on (YooKassa's names, not billing's
    event types)."""

    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_CANCELED = "payment.canceled"
    PAYMENT_WAITING_FOR_CAPTURE = "payment.waiting_for_capture"
    REFUND_SUCCEEDED = "refund.succeeded"


class ProviderPaymentStatus(StrEnum):
    PENDING = "pending"
    WAITING_FOR_CAPTURE = "waiting_for_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in (ProviderPaymentStatus.SUCCEEDED, ProviderPaymentStatus.CANCELED)


class ProviderRefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self is not ProviderRefundStatus.PENDING


@dataclass(frozen=True)
class ReceiptItem:
    description: str
    unit_price: Money
    vat_code: int
    quantity: Decimal = Decimal(1)
    payment_mode: str = "full_payment"
    payment_subject: str = "service"


@dataclass(frozen=True)
class Receipt:
    """The 54-FZ receipt data the provider registers with the tax service."""

    customer_email: str
    items: tuple[ReceiptItem, ...]


@dataclass(frozen=True)
class NewPayment:
    amount: Money
    description: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    # A payment the viewer confirms on the provider's page, who then comes back to return_url...
    return_url: str | None = None
    save_payment_method: bool = False
    # ...or a charge of a saved payment method, with no confirmation.
    payment_method_id: str | None = None
    receipt: Receipt | None = None
    capture: bool = True

    def __post_init__(self) -> None:
        if (self.return_url is None) == (self.payment_method_id is None):
            raise ValueError("A payment either has a return_url or charges a saved payment_method_id.")


@dataclass(frozen=True)
class NewRefund:
    provider_payment_id: str
    amount: Money
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    receipt: Receipt | None = None


@dataclass(frozen=True)
class ProviderPaymentMethod:
    id: str
    type: str
    saved: bool
    title: str
    card_last4: str | None = None
    card_type: str | None = None
    expiry_month: str | None = None
    expiry_year: str | None = None


@dataclass(frozen=True)
class Cancellation:
    party: str
    reason: str


@dataclass(frozen=True)
class ProviderPayment:
    id: str
    status: ProviderPaymentStatus
    amount: Money
    paid: bool
    created_at: datetime
    confirmation_url: str | None = None
    payment_method: ProviderPaymentMethod | None = None
    cancellation: Cancellation | None = None
    refunded: Money | None = None
    captured_at: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    test: bool = False
    # The provider's object as it came, for the record and for what billing does not model.
    raw: Mapping = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    provider_payment_id: str
    status: ProviderRefundStatus
    amount: Money
    created_at: datetime
    cancellation: Cancellation | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping = field(default_factory=dict, repr=False, compare=False)


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


class PaymentGateway(Protocol):
    """Raises `billing.errors.GatewayError` subclasses; never a provider SDK's exception."""

    def create_payment(self, payment: NewPayment, *, idempotence_key: str) -> ProviderPayment: ...

    def get_payment(self, provider_payment_id: str) -> ProviderPayment: ...

    def list_payments(
        self,
        *,
        created_since: datetime | None = None,
        status: ProviderPaymentStatus | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[ProviderPayment]: ...

    def capture_payment(
        self, provider_payment_id: str, *, amount: Money | None = None, idempotence_key: str
    ) -> ProviderPayment: ...

    def cancel_payment(self, provider_payment_id: str, *, idempotence_key: str) -> ProviderPayment: ...

    def create_refund(self, refund: NewRefund, *, idempotence_key: str) -> ProviderRefund: ...

    def get_refund(self, provider_refund_id: str) -> ProviderRefund: ...

    def list_refunds(
        self, *, provider_payment_id: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[ProviderRefund]: ...
