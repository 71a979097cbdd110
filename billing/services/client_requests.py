"""Inbound idempotency: a viewer's money mutation under their key returns its first result."""

import hashlib
import json
import uuid

from billing.errors import IdempotencyKeyReused, InvalidInput
from billing.models import ClientRequest

MAX_CLIENT_KEY_LENGTH = 128


def client_request_check_key(idempotency_key: str | None) -> None:
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_CLIENT_KEY_LENGTH:
        raise InvalidInput(f"An idempotency key has 1 to {MAX_CLIENT_KEY_LENGTH} characters.", field="idempotencyKey")


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
