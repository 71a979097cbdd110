"""Service API keys: create (shown once), revoke, and authenticate a request's bearer key.

A key reads `bsk_<prefix>_<secret>`: the prefix (8 hex characters) finds the row, the SHA-256 of
the whole key is compared in constant time. A viewer's JWT (three dot-separated parts) is never a
key: it is refused as such.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from internal_api.models import SCOPES, ServiceCredential

KEY_PATTERN = re.compile(r"^bsk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
LAST_USED_RESOLUTION = timedelta(minutes=1)
SERVICE_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


class CredentialError(Exception):
    """A request the internal API refuses; `status` is 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class CreatedKey:
    credential: ServiceCredential
    key: str  # the only time it is known: it is not stored


def service_key_create(*, service: str, scopes: list[str], expires_in_days: int | None = None) -> CreatedKey:
    if not SERVICE_NAME_PATTERN.match(service):
        raise ValueError(f"{service!r} is not a service name: lowercase letters, digits and dashes.")
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        raise ValueError(f"Scopes are some of {', '.join(SCOPES)}; not {unknown or 'none'}.")
    if expires_in_days is not None and expires_in_days < 1:
        raise ValueError("A key expires at least a day after it is made.")
    prefix = secrets.token_hex(4)
    key = f"bsk_{prefix}_{secrets.token_urlsafe(32)}"
    credential = ServiceCredential.objects.create(
        service=service,
        prefix=prefix,
        key_hash=_hash(key),
        scopes=sorted(set(scopes)),
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    return CreatedKey(credential=credential, key=key)


def service_key_revoke(*, prefix: str) -> ServiceCredential:
    with transaction.atomic():
        credential = ServiceCredential.objects.select_for_update().filter(prefix=prefix).first()
        if credential is None:
            raise ValueError(f"There is no key with the prefix {prefix!r}.")
        if credential.revoked_at is None:
            credential.revoked_at = timezone.now()
            credential.save(update_fields=["revoked_at"])
    return credential


def credential_authenticate(authorization: str | None, *, scope: str) -> ServiceCredential:
    """The live credential whose key is the request's bearer and which holds `scope`; else CredentialError."""
    if not authorization:
        raise CredentialError(401, "UNAUTHENTICATED", "Send 'Authorization: Bearer <service key>'.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise CredentialError(401, "UNAUTHENTICATED", "The Authorization header must be 'Bearer <service key>'.")
    if token.count(".") == 2:
        raise CredentialError(401, "VIEWER_TOKEN", "This API is for the cinema's services: viewer tokens are refused.")
    match = KEY_PATTERN.match(token)
    credential = ServiceCredential.objects.filter(prefix=match.group(1)).first() if match else None
    if credential is None or not hmac.compare_digest(credential.key_hash, _hash(token)):
        raise CredentialError(401, "UNAUTHENTICATED", "The service key is not valid.")
    now = timezone.now()
    if credential.revoked_at is not None:
        raise CredentialError(401, "UNAUTHENTICATED", "The service key is revoked.")
    if credential.expires_at is not None and credential.expires_at <= now:
        raise CredentialError(401, "UNAUTHENTICATED", "The service key has expired.")
    if scope not in credential.scopes:
        raise CredentialError(403, "FORBIDDEN", f"The service key does not have the scope {scope!r}.")
    _note_use(credential, now)
    return credential


def _note_use(credential: ServiceCredential, now: datetime) -> None:
    """At most one write a minute per key, whatever the request rate."""
    if credential.last_used_at is not None and now - credential.last_used_at < LAST_USED_RESOLUTION:
        return
    ServiceCredential.objects.filter(pk=credential.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    credential.last_used_at = now


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
