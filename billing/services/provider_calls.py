"""What payments and refunds share at YooKassa: asking it to create a row whose key is already
committed, the receipt sent with it, applying the status its API gives a locked row, and closing a
row it never created."""

import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from django.db.models import TextChoices

from billing.errors import GatewayError, IllegalTransition, ProviderRejected
from billing.gateway.interface import Receipt, ReceiptItem
from billing.models import Payment
from billing.money import Money

logger = logging.getLogger(__name__)

Row = TypeVar("Row")
Answer = TypeVar("Answer")


def provider_create(
    row: Row,
    *,
    kind: str,
    call: Callable[[], Answer],
    apply: Callable[[Answer], Row],
    reject: Callable[[ProviderRejected], Row],
) -> Row:
    """Make `call` (it sends the row's own Idempotence-Key) and bring the row to the outcome.

    An answer is applied; a refusal ends the row (it never existed at YooKassa); anything else
    leaves it as it is, for a retry or the janitor to send again under the same key. A failure is
    raised with the row as it now stands (`error.result[kind]`).
    """
    try:
        answer = call()
    except ProviderRejected as error:
        if error.parameter == "Idempotence-Key":
            # The key is in use: something may exist under it. Never give up on it here.
            logger.error("YooKassa refused the key of %s: %s", row, error)
            error.with_result(**{kind: row})
            raise
        error.with_result(**{kind: reject(error)})
        raise
    except GatewayError as error:
        logger.warning("%s not confirmed by YooKassa yet (%s); it keeps its key", row, error)
        error.with_result(**{kind: row})
        raise
    return apply(answer)


def provider_state_apply(
    row: Row,
    *,
    target: str,
    changed: list[str],
    conflict: Callable[[str], None],
    moved: Callable[[str], list[str]],
) -> Row:
    """Bring a locked payment or refund to the status YooKassa's API gives it (call inside the
    transaction that holds the lock); `changed` are the fields already copied from YooKassa's object.

    Late and repeated news is a no-op (only what changed is saved); a move the state machine
    forbids is left for an operator (`conflict(target)` records it); a move made is completed by `moved`
    (events, the subscription's part), which returns the further fields it set.
    """
    if target == row.status:
        if changed:
            row.save(update_fields=[*changed, "updated_at"])
        return row
    try:
        row.move_to(target)
    except IllegalTransition:
        conflict(target)
        return row
    fields = [*changed, "status", *moved(target)]
    row.save(update_fields=[*fields, "updated_at"])
    return row


def provider_receipt(payment: Payment, amount: Money) -> Receipt | None:
    """The 54-FZ receipt for `amount` of `payment` (paid or refunded), from the row alone so that a
    retry sends the very same one; None when the payment was made without a receipt."""
    if not payment.receipt_email:
        return None
    item = ReceiptItem(description=payment.description, unit_price=amount, vat_code=payment.receipt_vat_code)
    return Receipt(customer_email=payment.receipt_email, items=(item,))


def provider_row_close_never_created(
    lock: Callable[[], Row],
    *,
    statuses: type[TextChoices],
    rejection: ProviderRejected | None,
    record: Callable[[Row, str], None],
) -> Row:
    """End a payment or refund that never existed at YooKassa, so that no retry may create it any
    more: YooKassa refused it (`rejection`), or never confirmed it and its key is forgotten (None).

    `lock` returns the row locked (in billing.locks' order); a row that YooKassa has confirmed
    meanwhile (no longer CREATING in `statuses`) is left as it is. `record(row, reason)` writes what
    the end means (the event, the subscription's part) in the same transaction.
    """
    reason, detail = "never_reached_provider", None
    if rejection is not None:
        reason, detail = "rejected_by_provider", {"code": rejection.provider_code, "description": rejection.message}
    with transaction.atomic():
        row = lock()
        if row.status != statuses.CREATING:
            return row
        row.move_to(statuses.CANCELED)
        row.cancellation_party = "billing"
        row.cancellation_reason = reason
        row.provider_object = {"error": detail} if detail else None
        row.save(update_fields=["status", "cancellation_party", "cancellation_reason", "provider_object", "updated_at"])
        record(row, reason)
    return row
