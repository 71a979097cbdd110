"""The rules of the emulated YooKassa: payments, saved payment methods, refunds and their lifecycles.

Every public method runs in one store transaction and returns objects shaped like API v3's
(`Payment`, `Refund`, `PaymentList`, `RefundList` of the official OpenAPI spec). Invalid input
raises `ApiError` and changes nothing.
"""

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from urllib.parse import urlsplit

from sandbox.cards import DEFAULT_CSC, TestCard, default_expiry, find_test_card
from sandbox.config import SandboxConfig
from sandbox.errors import ApiError, forbidden, invalid_request, not_found
from sandbox.notifier import Notifier
from sandbox.store import Store

CENT = Decimal("0.01")
CURRENCIES = frozenset({"RUB", "EUR", "USD", "KZT", "BYN", "UAH", "UZS", "TRY", "INR", "MDL", "AZN", "AMD"})
PAYMENT_STATUSES = ("pending", "waiting_for_capture", "succeeded", "canceled")
REFUND_STATUSES = ("pending", "succeeded", "canceled")
_AMOUNT_VALUE = re.compile(r"^\d{1,15}(\.\d{1,2})?$")
_METADATA_KEYS, _METADATA_KEY_LENGTH, _METADATA_VALUE_LENGTH = 16, 32, 512
# Features of API v3 the sandbox does not emulate: asking for them is an error, not a silent no-op.
_UNSUPPORTED_PAYMENT_FIELDS = (
    "payment_token",
    "transfers",
    "deal",
    "airline",
    "receiver",
    "payment_order",
    "statements",
)


class RefundOutcome(StrEnum):
    SUCCEEDED = "succeeded"  # YooKassa's usual answer for bank cards
    PENDING = "pending"  # stays pending until settled through /sandbox/refunds/{id}/settle
    CANCELED = "canceled"


def iso(moment: datetime) -> str:
    """YooKassa's timestamps: UTC, milliseconds, a trailing Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_object_id(kind: str) -> str:
    """36 characters like YooKassa's ids, e.g. 2d9f5b3a-000f-5000-8000-1c2b3a4d5e6f."""
    return f"{secrets.token_hex(4)}-{kind}-5000-{secrets.choice('89ab')}000-{secrets.token_hex(6)}"


@dataclass(frozen=True)
class CheckoutStep:
    """What the payment page shows next."""

    payment: dict
    return_url: str | None
    needs_three_d_secure: bool = False
    error: str | None = None


class Emulator:
    def __init__(self, config: SandboxConfig, store: Store, notifier: Notifier) -> None:
        self.config = config
        self.store = store
        self.notifier = notifier
        self.refund_outcome = RefundOutcome.SUCCEEDED

    # --- payments: API ----------------------------------------------------------------------

    def create_payment(self, body: dict) -> dict:
        amount = _money(body.get("amount"), "amount")
        for name in _UNSUPPORTED_PAYMENT_FIELDS:
            if body.get(name):
                raise invalid_request(f"Parameter {name} is not supported by the sandbox", name)
        description = _text(body, "description", 128)
        metadata = _metadata(body.get("metadata"))
        capture = _flag(body, "capture")
        save_method = _flag(body, "save_payment_method")
        has_receipt = _check_receipt(body.get("receipt"), amount, "receipt")
        merchant_customer_id = _text(body, "merchant_customer_id", 200)
        _check_method_data(body.get("payment_method_data"))

        now = self.config.clock()
        payment_id = new_object_id("000f")
        payment = {
            "id": payment_id,
            "status": "pending",
            "amount": amount,
            "recipient": {"account_id": self.config.shop_id, "gateway_id": self.config.gateway_id},
            "created_at": iso(now),
            "test": True,
            "paid": False,
            "refundable": False,
            "metadata": metadata,
        }
        if description is not None:
            payment["description"] = description
        if merchant_customer_id is not None:
            payment["merchant_customer_id"] = merchant_customer_id
        if has_receipt:
            payment["receipt_registration"] = "pending"
        internal = {"capture": capture, "save_payment_method": save_method, "return_url": None}

        method_id = body.get("payment_method_id")
        confirmation = body.get("confirmation")
        with self.store.transaction():
            if method_id is not None:
                if confirmation is not None:
                    raise invalid_request("Confirmation must be null when using payment_method_id", "confirmation")
                self._charge_saved_method(payment, self._saved_method(method_id), capture=capture)
            else:
                return_url = _redirect_return_url(confirmation)
                internal["return_url"] = return_url
                internal["confirm_by"] = iso(now + self.config.confirmation_ttl)
                payment["confirmation"] = {
                    "type": "redirect",
                    "return_url": return_url,
                    "confirmation_url": f"{self.config.public_url}/checkout/{payment_id}",
                }
            self._save_payment(payment, internal)
        return payment

    def get_payment(self, payment_id: str) -> dict:
        return self._load_payment(payment_id, missing=not_found)[0]

    def list_payments(self, query: dict[str, list[str]]) -> dict:
        filters = []
        status = _single(query, "status")
        if status is not None:
            if status not in PAYMENT_STATUSES:
                raise invalid_request("Invalid parameter value: status", "status")
            filters.append(("status", "=", status))
        payment_method = _single(query, "payment_method")
        if payment_method is not None:
            filters.append(("method_type", "=", payment_method))
        filters += _time_filters(query, "created_at") + _time_filters(query, "captured_at")
        return self._page(self.store.list_payments, query, filters)

    def capture_payment(self, payment_id: str, body: dict) -> dict:
        with self.store.transaction():
            payment, internal = self._load_payment(payment_id, missing=invalid_request)
            if payment["status"] != "waiting_for_capture":
                raise invalid_request("Payment can not be captured in current status")
            if body.get("amount") is not None:
                amount = _money(body["amount"], "amount")
                if amount["currency"] != payment["amount"]["currency"] or Decimal(amount["value"]) > Decimal(
                    payment["amount"]["value"]
                ):
                    raise invalid_request("Illegal amount for capture", "amount")
                payment["amount"] = amount
            _check_receipt(body.get("receipt"), payment["amount"], "receipt")
            self._succeed(payment)
            self._save_payment(payment, internal)
        return payment

    def cancel_payment(self, payment_id: str) -> dict:
        with self.store.transaction():
            payment, internal = self._load_payment(payment_id, missing=invalid_request)
            if payment["status"] != "waiting_for_capture":
                raise invalid_request("Payment can not be canceled in current status")
            self._cancel(payment, party="merchant", reason="canceled_by_merchant")
            self._save_payment(payment, internal)
        return payment

    # --- payments: what the payer does on the payment page ------------------------------------

    def checkout_state(self, payment_id: str) -> CheckoutStep:
        payment, internal = self._load_payment(payment_id, missing=not_found)
        return CheckoutStep(payment, internal.get("return_url"), needs_three_d_secure="card" in internal)

    def submit_card(
        self, payment_id: str, *, card_number: str, expiry: str | None = None, csc: str | None = None
    ) -> CheckoutStep:
        """The card form; only the number is required, a missing expiry or code is a valid one."""
        now = self.config.clock()
        expiry = expiry if expiry and expiry.strip() else default_expiry(now)
        csc = csc if csc and csc.strip() else DEFAULT_CSC
        with self.store.transaction():
            payment, internal = self._load_payment(payment_id, missing=not_found)
            return_url = internal.get("return_url")
            if payment["status"] != "pending":
                return CheckoutStep(payment, return_url)
            card = find_test_card(card_number)
            if card is None:
                return CheckoutStep(
                    payment, return_url, error="Use one of YooKassa's test cards, e.g. 5555 5555 5555 4444."
                )
            expiry_date = _card_expiry(expiry, now)
            if expiry_date is None:
                return CheckoutStep(payment, return_url, error="Enter an expiry date in the future as MM/YY.")
            if not re.fullmatch(r"\s*\d{3,4}\s*", csc):
                return CheckoutStep(payment, return_url, error="Card csc is illegal. Must be a 3- or 4-digit number.")
            if card.three_d_secure:
                internal["card"] = {"number": card.number, "expiry": expiry_date}
                self._save_payment(payment, internal)
                return CheckoutStep(payment, return_url, needs_three_d_secure=True)
            self._pay_with_card(payment, internal, card, expiry_date, three_d_secure=False)
            self._save_payment(payment, internal)
        return CheckoutStep(payment, return_url)

    def confirm_three_d_secure(self, payment_id: str) -> CheckoutStep:
        """Any code passes the test shop's 3-D Secure page; the card decides the outcome."""
        with self.store.transaction():
            payment, internal = self._load_payment(payment_id, missing=not_found)
            pending_card = internal.pop("card", None)
            if payment["status"] == "pending" and pending_card is not None:
                card = find_test_card(pending_card["number"])
                self._pay_with_card(payment, internal, card, pending_card["expiry"], three_d_secure=True)
                self._save_payment(payment, internal)
        return CheckoutStep(payment, internal.get("return_url"))

    # --- refunds ------------------------------------------------------------------------------

    def create_refund(self, body: dict) -> dict:
        payment_id = body.get("payment_id")
        if not isinstance(payment_id, str) or not payment_id:
            raise invalid_request("Parameter payment_id is required", "payment_id")
        amount = _money(body.get("amount"), "amount")
        description = _text(body, "description", 250)
        metadata = _metadata(body.get("metadata"))
        for name in ("sources", "deal", "refund_method_data"):
            if body.get(name):
                raise invalid_request(f"Parameter {name} is not supported by the sandbox", name)
        has_receipt = _check_receipt(body.get("receipt"), amount, "receipt")
        with self.store.transaction():
            payment, internal = self._load_payment(payment_id, missing=invalid_request)
            if payment["status"] != "succeeded":
                raise invalid_request("Payment can not be refunded in current status", "payment_id")
            if amount["currency"] != payment["amount"]["currency"]:
                raise invalid_request("Refund currency differs from the payment currency", "amount.currency")
            paid = Decimal(payment["amount"]["value"])
            taken = sum(
                (
                    Decimal(refund["amount"]["value"])
                    for refund in self.store.refunds_of_payment(payment_id)
                    if refund["status"] != "canceled"
                ),
                Decimal(0),
            )
            if taken >= paid:
                raise invalid_request("Payment is already completely refunded", "payment_id")
            if taken + Decimal(amount["value"]) > paid:
                raise invalid_request("Refund sum exceeded", "amount.value")
            refund = {
                "id": new_object_id("0015"),
                "payment_id": payment_id,
                "status": "pending",
                "created_at": iso(self.config.clock()),
                "amount": amount,
                "metadata": metadata,
            }
            if description is not None:
                refund["description"] = description
            if has_receipt:
                refund["receipt_registration"] = "pending"
            if self.refund_outcome is RefundOutcome.SUCCEEDED:
                self._refund_succeed(refund, payment, internal)
            elif self.refund_outcome is RefundOutcome.CANCELED:
                refund.update(
                    status="canceled", cancellation_details={"party": "refund_network", "reason": "rejected_by_payee"}
                )
            self.store.save_refund(refund)
        return refund

    def get_refund(self, refund_id: str) -> dict:
        refund = self.store.get_refund(refund_id)
        if refund is None:
            raise not_found("Refund not found or forbidden", "refund_id")
        return refund

    def list_refunds(self, query: dict[str, list[str]]) -> dict:
        filters = []
        payment_id = _single(query, "payment_id")
        if payment_id is not None:
            filters.append(("payment_id", "=", payment_id))
        status = _single(query, "status")
        if status is not None:
            if status not in REFUND_STATUSES:
                raise invalid_request("Invalid parameter value: status", "status")
            filters.append(("status", "=", status))
        filters += _time_filters(query, "created_at")
        return self._page(self.store.list_refunds, query, filters)

    def me(self) -> dict:
        return {
            "account_id": self.config.shop_id,
            "test": True,
            "status": "enabled",
            "fiscalization_enabled": True,
            "payment_methods": ["bank_card"],
        }

    # --- operator and test controls -------------------------------------------------------------

    def revoke_payment_method(self, method_id: str) -> dict:
        """The payer withdrew consent to autopayments: charges end with permission_revoked."""
        with self.store.transaction():
            method = self._saved_method(method_id)
            method["revoked"] = True
            self.store.save_payment_method(method)
        return method

    def set_payment_method_decline(self, method_id: str, reason: str | None) -> dict:
        """Make charges of a saved card decline with `reason` (None: succeed again)."""
        with self.store.transaction():
            method = self._saved_method(method_id)
            method["decline_reason"] = reason
            self.store.save_payment_method(method)
        return method

    def expire_payment(self, payment_id: str) -> dict:
        """End a pending or waiting_for_capture payment now, as its deadline would."""
        with self.store.transaction():
            payment, internal = self._load_payment(payment_id, missing=not_found)
            self._expire(payment)
            self._save_payment(payment, internal)
        return payment

    def settle_refund(self, refund_id: str, status: str) -> dict:
        with self.store.transaction():
            refund = self.get_refund(refund_id)
            if refund["status"] != "pending":
                raise invalid_request("Refund is not pending", "refund_id")
            if status == "succeeded":
                payment, internal = self._load_payment(refund["payment_id"], missing=not_found)
                self._refund_succeed(refund, payment, internal)
            elif status == "canceled":
                refund.update(
                    status="canceled", cancellation_details={"party": "refund_network", "reason": "rejected_by_payee"}
                )
            else:
                raise invalid_request("status is succeeded or canceled", "status")
            self.store.save_refund(refund)
        return refund

    def expire_due(self) -> int:
        """Cancel every payment whose confirmation or capture deadline has passed."""
        with self.store.transaction():
            due = self.store.payments_past_deadline(iso(self.config.clock()))
            for payment_id in due:
                payment, internal = self._load_payment(payment_id, missing=not_found)
                self._expire(payment)
                self._save_payment(payment, internal)
        return len(due)

    # --- transitions ------------------------------------------------------------------------------

    def _pay_with_card(
        self, payment: dict, internal: dict, card: TestCard, expiry: str, *, three_d_secure: bool
    ) -> None:
        month, year = expiry.split("/")
        method = {
            "type": "bank_card",
            "id": payment["id"],
            "saved": False,
            "status": "inactive",
            "title": f"Bank card *{card.last4}",
            "card": {
                "first6": card.first6,
                "last4": card.last4,
                "expiry_year": year,
                "expiry_month": month,
                "card_type": card.card_type,
                "issuer_country": "RU",
            },
        }
        payment["payment_method"] = method
        if card.decline is not None:
            self._cancel(payment, party=card.decline.party, reason=card.decline.reason)
            return
        if internal["save_payment_method"]:
            method.update(saved=True, status="active")
            self.store.save_payment_method(
                {**method, "payment_id": payment["id"], "revoked": False, "decline_reason": None}
            )
        self._authorize(payment, capture=internal["capture"], three_d_secure=three_d_secure)

    def _charge_saved_method(self, payment: dict, method: dict, *, capture: bool) -> None:
        payment["payment_method"] = {key: method[key] for key in ("type", "id", "saved", "status", "title", "card")}
        if method["revoked"]:
            payment["payment_method"]["status"] = "inactive"
            self._cancel(payment, party="yoo_money", reason="permission_revoked")
        elif method["decline_reason"]:
            self._cancel(payment, party="payment_network", reason=method["decline_reason"])
        else:
            self._authorize(payment, capture=capture, three_d_secure=False)

    def _authorize(self, payment: dict, *, capture: bool, three_d_secure: bool) -> None:
        payment["paid"] = True
        payment["authorization_details"] = {
            "rrn": f"{secrets.randbelow(10**12):012d}",
            "auth_code": f"{secrets.randbelow(10**6):06d}",
            "three_d_secure": {"applied": three_d_secure},
        }
        if capture:
            self._succeed(payment)
        else:
            payment["status"] = "waiting_for_capture"
            payment["expires_at"] = iso(self.config.clock() + self.config.capture_ttl)
            self.notifier.emit("payment.waiting_for_capture", payment)

    def _succeed(self, payment: dict) -> None:
        value = Decimal(payment["amount"]["value"])
        fee = (value * self.config.fee_rate).quantize(CENT, rounding=ROUND_HALF_UP)
        payment.pop("expires_at", None)
        payment.update(
            status="succeeded",
            paid=True,
            refundable=True,
            captured_at=iso(self.config.clock()),
            income_amount={"value": f"{value - fee:.2f}", "currency": payment["amount"]["currency"]},
        )
        if "receipt_registration" in payment:
            payment["receipt_registration"] = "succeeded"
        self.notifier.emit("payment.succeeded", payment)

    def _cancel(self, payment: dict, *, party: str, reason: str) -> None:
        payment.pop("expires_at", None)
        payment.update(
            status="canceled", paid=False, refundable=False, cancellation_details={"party": party, "reason": reason}
        )
        if "receipt_registration" in payment:
            payment["receipt_registration"] = "canceled"
        self.notifier.emit("payment.canceled", payment)

    def _expire(self, payment: dict) -> None:
        if payment["status"] == "pending":
            self._cancel(payment, party="yoo_money", reason="expired_on_confirmation")
        elif payment["status"] == "waiting_for_capture":
            self._cancel(payment, party="yoo_money", reason="expired_on_capture")

    def _refund_succeed(self, refund: dict, payment: dict, internal: dict) -> None:
        refund["status"] = "succeeded"
        if "receipt_registration" in refund:
            refund["receipt_registration"] = "succeeded"
        refunded = Decimal(refund["amount"]["value"]) + sum(
            (
                Decimal(other["amount"]["value"])
                for other in self.store.refunds_of_payment(payment["id"])
                if other["status"] == "succeeded" and other["id"] != refund["id"]
            ),
            Decimal(0),
        )
        payment["refunded_amount"] = {"value": f"{refunded:.2f}", "currency": payment["amount"]["currency"]}
        payment["refundable"] = refunded < Decimal(payment["amount"]["value"])
        self._save_payment(payment, internal)
        self.notifier.emit("refund.succeeded", refund)

    # --- storage helpers ----------------------------------------------------------------------------

    def _load_payment(self, payment_id: str, *, missing) -> tuple[dict, dict]:
        found = self.store.get_payment(payment_id)
        if found is None:
            raise missing("Payment not found or forbidden", "payment_id")
        return found

    def _save_payment(self, payment: dict, internal: dict) -> None:
        deadline = {"pending": internal.get("confirm_by"), "waiting_for_capture": payment.get("expires_at")}
        self.store.save_payment(payment, internal, deadline=deadline.get(payment["status"]))

    def _saved_method(self, method_id) -> dict:
        if not isinstance(method_id, str) or not method_id:
            raise invalid_request("Invalid parameter value: payment_method_id", "payment_method_id")
        method = self.store.get_payment_method(method_id)
        if method is not None:
            return method
        if self.store.get_payment(method_id) is not None:
            raise invalid_request("Payment method is not saved", "payment_method_id")
        raise invalid_request("Payment method not found or forbidden", "payment_method_id")

    def _page(self, fetch, query: dict[str, list[str]], filters: list) -> dict:
        limit = _limit(query)
        cursor = _single(query, "cursor")
        rows = fetch(filters, before_seq=_decode_cursor(cursor) if cursor else None, limit=limit + 1)
        page = {"type": "list", "items": [obj for _, obj in rows[:limit]]}
        if len(rows) > limit:
            page["next_cursor"] = _encode_cursor(rows[limit - 1][0])
        return page


# --- request validation -----------------------------------------------------------------------------


def _money(data, parameter: str) -> dict:
    if not isinstance(data, dict):
        raise invalid_request(f"Parameter {parameter} is required", parameter)
    value, currency = data.get("value"), data.get("currency")
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _AMOUNT_VALUE.match(value):
        raise invalid_request(f"Invalid parameter value: {parameter}.value", f"{parameter}.value")
    try:
        amount = Decimal(value).quantize(CENT)
    except InvalidOperation as exc:
        raise invalid_request(f"Invalid parameter value: {parameter}.value", f"{parameter}.value") from exc
    if amount <= 0:
        raise invalid_request(f"Parameter {parameter}.value must be greater than zero", f"{parameter}.value")
    if currency not in CURRENCIES:
        raise invalid_request(f"Invalid parameter value: {parameter}.currency", f"{parameter}.currency")
    return {"value": f"{amount:.2f}", "currency": currency}


def _text(body: dict, name: str, max_length: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise invalid_request(f"Parameter {name} must be a string of at most {max_length} characters", name)
    return value


def _flag(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise invalid_request(f"Parameter {name} must be true or false", name)
    return value


def _metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise invalid_request("Parameter metadata must be an object", "metadata")
    if len(metadata) > _METADATA_KEYS:
        raise invalid_request(f"Metadata object is limited to {_METADATA_KEYS} keys", "metadata")
    for key, value in metadata.items():
        if len(key) > _METADATA_KEY_LENGTH or not isinstance(value, str) or len(value) > _METADATA_VALUE_LENGTH:
            raise invalid_request(
                f"Metadata keys are at most {_METADATA_KEY_LENGTH} characters and values strings "
                f"of at most {_METADATA_VALUE_LENGTH}",
                f"metadata.{key}",
            )
    return metadata


def _check_method_data(method_data) -> None:
    if method_data is None:
        return
    if not isinstance(method_data, dict) or method_data.get("type") != "bank_card":
        raise invalid_request(
            "The sandbox accepts only payment_method_data of type bank_card", "payment_method_data.type"
        )
    if method_data.get("card"):
        raise forbidden("Forbidden to send raw bank card data", "payment_method_data.card")


def _redirect_return_url(confirmation) -> str:
    if confirmation is None:
        raise invalid_request("Missing confirmation type for payment method type: bank_card", "confirmation")
    if not isinstance(confirmation, dict) or confirmation.get("type") != "redirect":
        raise invalid_request("The sandbox supports only confirmation of type redirect", "confirmation.type")
    return_url = confirmation.get("return_url")
    parts = urlsplit(return_url) if isinstance(return_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(return_url) > 2048:
        raise invalid_request("Invalid parameter value: confirmation.return_url", "confirmation.return_url")
    return return_url


def _check_receipt(receipt, amount: dict, parameter: str) -> bool:
    """54-FZ receipt data: a customer to send it to, items with VAT codes that add up to the amount."""
    if receipt is None:
        return False
    if not isinstance(receipt, dict):
        raise invalid_request(f"Parameter {parameter} must be an object", parameter)
    customer = receipt.get("customer") or {}
    if not (customer.get("email") or customer.get("phone") or receipt.get("email") or receipt.get("phone")):
        raise invalid_request("Receipt customer email or phone is required", f"{parameter}.customer")
    items = receipt.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= 100:
        raise invalid_request("Receipt items must hold from 1 to 100 items", f"{parameter}.items")
    total = Decimal(0)
    for index, item in enumerate(items):
        where = f"{parameter}.items[{index}]"
        if not isinstance(item, dict) or not item.get("description"):
            raise invalid_request("Receipt item description is required", f"{where}.description")
        item_amount = _money(item.get("amount"), f"{where}.amount")
        try:
            quantity = Decimal(str(item.get("quantity")))
        except InvalidOperation as exc:
            raise invalid_request("Invalid receipt item quantity", f"{where}.quantity") from exc
        if not quantity > 0:
            raise invalid_request("Invalid receipt item quantity", f"{where}.quantity")
        vat_code = item.get("vat_code")
        if not isinstance(vat_code, int) or not 1 <= vat_code <= 12:
            raise invalid_request("Receipt item vat_code must be from 1 to 12", f"{where}.vat_code")
        total += Decimal(item_amount["value"]) * quantity
    if total.quantize(CENT) != Decimal(amount["value"]):
        raise invalid_request("Receipt item amounts do not add up to the amount", f"{parameter}.items")
    return True


def _card_expiry(expiry: str, now: datetime) -> str | None:
    """'MM/YY' in the future -> 'MM/YYYY', else None."""
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", expiry or "")
    if not match:
        return None
    month, year = int(match[1]), int(match[2])
    year += 2000 if year < 100 else 0
    if not 1 <= month <= 12 or (year, month) < (now.year, now.month):
        return None
    return f"{month:02d}/{year}"


def _single(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _limit(query: dict[str, list[str]]) -> int:
    raw = _single(query, "limit")
    if raw is None:
        return 10
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise invalid_request("Invalid parameter value: limit (from 1 to 100)", "limit")
    return int(raw)


def _time_filters(query: dict[str, list[str]], field: str) -> list[tuple[str, str, str]]:
    operators = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<"}
    filters = []
    for suffix, operator in operators.items():
        raw = _single(query, f"{field}.{suffix}")
        if raw is None:
            continue
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError as exc:
            raise invalid_request(f"Invalid parameter value: {field}.{suffix}", f"{field}.{suffix}") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        filters.append((field, operator, iso(moment)))
    return filters


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, seq = decoded.split(":")
        if prefix != "seq":
            raise ValueError(prefix)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_request", "Invalid parameter value: cursor", parameter="cursor") from exc
