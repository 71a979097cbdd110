"""Inbound idempotency: a viewer's money mutation under their key returns its first result."""

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.db import IntegrityError, transaction

from billing.errors import IdempotencyKeyReused, InvalidInput
from billing.models import ClientRequest, Payment, Refund, Subscription
from billing.validation import has_control_characters

T = TypeVar("T")

MAX_CLIENT_KEY_LENGTH = 128


def client_request_check_key(idempotency_key: str | None) -> None:
    if idempotency_key is None:
        return
    if not 1 <= len(idempotency_key) <= MAX_CLIENT_KEY_LENGTH or has_control_characters(idempotency_key):
        raise InvalidInput(
            f"An idempotency key has 1 to {MAX_CLIENT_KEY_LENGTH} characters, none of them control characters.",
            field="idempotencyKey",
        )


def client_request_fingerprint(operation: str, *parts) -> str:
    return hashlib.sha256(json.dumps([operation, *parts], default=str).encode()).hexdigest()


def client_request_earlier(
    *, viewer_id: uuid.UUID, idempotency_key: str | None, operation: str, fingerprint: str
) -> ClientRequest | None:
    """The first request under this key, or None; the key used for other input is an error."""
    if idempotency_key is None:
        return None
    earlier = ClientRequest.objects.filter(viewer_id=viewer_id, key=idempotency_key).first()
    if earlier is not None and (earlier.operation != operation or earlier.fingerprint != fingerprint):
        raise IdempotencyKeyReused("This idempotency key was used for another request.", field="idempotencyKey")
    return earlier


@dataclass(frozen=True)
class KeyedRequest:
    """One viewer request under an optional idempotency key."""

    viewer_id: uuid.UUID
    idempotency_key: str | None
    operation: str
    fingerprint: str

    def earlier(self) -> ClientRequest | None:
        return client_request_earlier(
            viewer_id=self.viewer_id,
            idempotency_key=self.idempotency_key,
            operation=self.operation,
            fingerprint=self.fingerprint,
        )

    def remember(
        self, *, subscription: Subscription, payment: Payment | None = None, refund: Refund | None = None
    ) -> None:
        """Record the result under the key (in the transaction that made it)."""
        if self.idempotency_key is not None:
            ClientRequest.objects.create(
                viewer_id=self.viewer_id,
                key=self.idempotency_key,
                operation=self.operation,
                fingerprint=self.fingerprint,
                subscription=subscription,
                payment=payment,
                refund=refund,
            )


def atomic_retrying_conflicts(work: Callable[[], T], *, attempts: int = 5) -> T:
    """Run `work` in a transaction; when a concurrent request commits the same thing first (a
    unique constraint fires), run it again: the next round reads what the other one made."""
    for _ in range(attempts):
        try:
            with transaction.atomic():
                return work()
        except IntegrityError:
            continue
    raise RuntimeError(f"{work} kept colliding with concurrent requests.")
