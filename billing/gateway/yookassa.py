"""YooKassa behind the `PaymentGateway` port: billing's dataclasses in, billing's dataclasses out."""

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import quote

from yookassa.domain.request import CapturePaymentRequest, PaymentRequest
from yookassa.domain.request.refund_request import RefundRequest

from billing.errors import ProviderOutcomeUnknown
from billing.gateway.interface import (
    Cancellation,
    NewPayment,
    NewRefund,
    Page,
    ProviderPayment,
    ProviderPaymentMethod,
    ProviderPaymentStatus,
    ProviderRefund,
    ProviderRefundStatus,
    Receipt,
)
from billing.gateway.yookassa_client import YooKassaClient, YooKassaConfig
from billing.money import Money


class YooKassaGateway:
    def __init__(self, config: YooKassaConfig) -> None:
        self._client = YooKassaClient(config)

    def create_payment(self, payment: NewPayment, *, idempotence_key: str) -> ProviderPayment:
        params: dict = {
            "amount": _amount(payment.amount),
            "description": payment.description[:128],
            "metadata": dict(payment.metadata),
            "capture": payment.capture,
        }
        if payment.payment_method_id is not None:
            params["payment_method_id"] = payment.payment_method_id
        else:
            params["confirmation"] = {"type": "redirect", "return_url": payment.return_url}
            params["save_payment_method"] = payment.save_payment_method
        if payment.receipt is not None:
            params["receipt"] = _receipt(payment.receipt)
        answer = self._client.post("/payments", params, idempotence_key=idempotence_key, checked_as=PaymentRequest)
        return _payment(answer)

    def get_payment(self, provider_payment_id: str) -> ProviderPayment:
        return _payment(self._client.get(f"/payments/{_segment(provider_payment_id)}"))

    def list_payments(
        self,
        *,
        created_since: datetime | None = None,
        status: ProviderPaymentStatus | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[ProviderPayment]:
        params = {"limit": limit}
        if created_since is not None:
            params["created_at.gte"] = _timestamp(created_since)
        if status is not None:
            params["status"] = status.value
        if cursor is not None:
            params["cursor"] = cursor
        answer = self._client.get("/payments", params)
        return Page([_payment(item) for item in answer.get("items", [])], answer.get("next_cursor"))

    def capture_payment(
        self, provider_payment_id: str, *, amount: Money | None = None, idempotence_key: str
    ) -> ProviderPayment:
        body = {"amount": _amount(amount)} if amount is not None else None
        answer = self._client.post(
            f"/payments/{_segment(provider_payment_id)}/capture",
            body,
            idempotence_key=idempotence_key,
            checked_as=CapturePaymentRequest if body is not None else None,
        )
        return _payment(answer)

    def cancel_payment(self, provider_payment_id: str, *, idempotence_key: str) -> ProviderPayment:
        answer = self._client.post(
            f"/payments/{_segment(provider_payment_id)}/cancel", None, idempotence_key=idempotence_key
        )
        return _payment(answer)

    def create_refund(self, refund: NewRefund, *, idempotence_key: str) -> ProviderRefund:
        params: dict = {"payment_id": refund.provider_payment_id, "amount": _amount(refund.amount)}
        if refund.description:
            params["description"] = refund.description[:250]
        if refund.metadata:
            params["metadata"] = dict(refund.metadata)
        if refund.receipt is not None:
            params["receipt"] = _receipt(refund.receipt)
        answer = self._client.post("/refunds", params, idempotence_key=idempotence_key, checked_as=RefundRequest)
        return _refund(answer)

    def get_refund(self, provider_refund_id: str) -> ProviderRefund:
        return _refund(self._client.get(f"/refunds/{_segment(provider_refund_id)}"))

    def list_refunds(
        self, *, provider_payment_id: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[ProviderRefund]:
        params: dict = {"limit": limit}
        if provider_payment_id is not None:
            params["payment_id"] = provider_payment_id
        if cursor is not None:
            params["cursor"] = cursor
        answer = self._client.get("/refunds", params)
        return Page([_refund(item) for item in answer.get("items", [])], answer.get("next_cursor"))


# --- requests -------------------------------------------------------------------------------


def _segment(object_id: str) -> str:
    """An id as one path segment, whatever it holds ("../me" must not reach another endpoint)."""
    return quote(object_id, safe="")


def _amount(money: Money) -> dict:
    # A string, from the Decimal: the API's own format, and no float on the way.
    return {"value": f"{money.amount:.2f}", "currency": money.currency}


def _receipt(receipt: Receipt) -> dict:
    return {
        "customer": {"email": receipt.customer_email},
        "items": [
            {
                "description": item.description[:128],
                "quantity": str(item.quantity),
                "amount": _amount(item.unit_price),
                "vat_code": item.vat_code,
                "payment_mode": item.payment_mode,
                "payment_subject": item.payment_subject,
            }
            for item in receipt.items
        ],
    }


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- answers: parsed from the raw JSON, so that nothing the SDK does not know is lost ----------


def _payment(data: Mapping) -> ProviderPayment:
    try:
        method = data.get("payment_method")
        cancellation = data.get("cancellation_details")
        refunded = data.get("refunded_amount")
        return ProviderPayment(
            id=data["id"],
            status=ProviderPaymentStatus(data["status"]),
            amount=_money(data["amount"]),
            paid=bool(data.get("paid")),
            created_at=_datetime(data["created_at"]),
            confirmation_url=(data.get("confirmation") or {}).get("confirmation_url"),
            payment_method=_payment_method(method) if method else None,
            cancellation=Cancellation(cancellation.get("party", ""), cancellation.get("reason", ""))
            if cancellation
            else None,
            refunded=_money(refunded) if refunded else None,
            captured_at=_datetime(data["captured_at"]) if data.get("captured_at") else None,
            metadata=dict(data.get("metadata") or {}),
            test=bool(data.get("test")),
            raw=data,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderOutcomeUnknown(f"YooKassa sent a payment this service cannot read: {exc!r}") from exc


def _payment_method(data: Mapping) -> ProviderPaymentMethod:
    card = data.get("card") or {}
    return ProviderPaymentMethod(
        id=data["id"],
        type=data["type"],
        saved=bool(data.get("saved")),
        title=data.get("title") or data["type"],
        card_last4=card.get("last4"),
        card_type=card.get("card_type"),
        expiry_month=card.get("expiry_month"),
        expiry_year=card.get("expiry_year"),
    )


def _refund(data: Mapping) -> ProviderRefund:
    try:
        cancellation = data.get("cancellation_details")
        return ProviderRefund(
            id=data["id"],
            provider_payment_id=data["payment_id"],
            status=ProviderRefundStatus(data["status"]),
            amount=_money(data["amount"]),
            created_at=_datetime(data["created_at"]),
            cancellation=Cancellation(cancellation.get("party", ""), cancellation.get("reason", ""))
            if cancellation
            else None,
            metadata=dict(data.get("metadata") or {}),
            raw=data,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderOutcomeUnknown(f"YooKassa sent a refund this service cannot read: {exc!r}") from exc


def _money(data: Mapping) -> Money:
    return Money(Decimal(data["value"]).quantize(Decimal("0.01")), data["currency"])


def _datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
