"""Viewers authenticate with JWTs issued by the cinema's Auth service; billing only verifies them.

Viewers are not Django users (those are the admin's operators). A request's viewer is looked at
only by the fields that need one, so public fields such as `plans` work without a token.
"""

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from graphql import GraphQLError

# The Auth service's clock and ours may differ by this much (seconds).
CLOCK_SKEW = 30
# What an email column (Django's EmailField) holds.
MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True)
class Viewer:
    id: uuid.UUID
    email: str | None
    expires_at: datetime | None = None


class AuthenticationError(GraphQLError):
    """Shown to the client as it is (not masked), with `extensions.code = UNAUTHENTICATED`."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "UNAUTHENTICATED"})


def viewer_from_authorization(authorization: str | None) -> Viewer:
    if not authorization:
        raise AuthenticationError("Sign in: send 'Authorization: Bearer <token>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("The Authorization header must be 'Bearer <token>'.")
    return viewer_from_token(token.strip())


def viewer_from_token(token: str) -> Viewer:
    key = settings.JWT_PUBLIC_KEY or settings.JWT_SECRET
    if not key:
        raise AuthenticationError("Viewer authentication is not configured on this server.")
    try:
        claims = jwt.decode(
            token,
            key,
            # Only the configured algorithm: never "none", never HS256 with a public key.
            algorithms=[settings.JWT_ALGORITHM],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            # Without JWT_AUDIENCE, a token meant for a named audience is refused (PyJWT's rule).
            options={"require": ["exp", "sub"]},
            leeway=CLOCK_SKEW,
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("The token has expired: sign in again.") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationError("The token is not valid.") from exc
    try:
        viewer_id = uuid.UUID(str(claims["sub"]))
    except ValueError as exc:
        raise AuthenticationError("The token's subject is not a viewer id.") from exc
    return Viewer(id=viewer_id, email=_email_of(claims.get("email")), expires_at=_expiry_of(claims["exp"]))


def _expiry_of(claim: Any) -> datetime:
    """The `exp` claim as a moment. PyJWT checked it against now, but it also takes a numeric string
    and any integer, which no datetime holds (10^20, year 10000): such a token is not valid."""
    if isinstance(claim, bool) or not isinstance(claim, int | float):
        raise AuthenticationError("The token is not valid.")
    try:
        return datetime.fromtimestamp(claim, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise AuthenticationError("The token is not valid.") from exc


def _email_of(claim: Any) -> str | None:
    """The claim when it is an address we can store and mail to; otherwise the viewer has none
    (a receipt then asks for one) rather than a request that fails on the database."""
    if not isinstance(claim, str) or len(claim) > MAX_EMAIL_LENGTH:
        return None
    try:
        validate_email(claim)
    except ValidationError:
        return None
    return claim


@dataclass
class Context:
    """The GraphQL context over HTTP (a Django request) and over websockets (the consumer)."""

    request: Any
    response: Any = None
    # Websockets only: the client's `connection_init` payload, where browsers put the token.
    connection_params: dict | None = None

    _viewer: Viewer | None = field(default=None, init=False, repr=False)

    @property
    def viewer(self) -> Viewer:
        """Verified once, but its expiry is checked on every use: a websocket outlives tokens."""
        if self._viewer is None:
            self._viewer = viewer_from_authorization(self.authorization)
        if self._viewer.expires_at is not None and self._viewer.expires_at.timestamp() + CLOCK_SKEW < time.time():
            raise AuthenticationError("The token has expired: sign in again.")
        return self._viewer

    @property
    def authorization(self) -> str | None:
        if isinstance(self.connection_params, dict):
            value = self.connection_params.get("authorization") or self.connection_params.get("Authorization")
            return value if isinstance(value, str) else None
        headers = getattr(self.request, "headers", None)
        return headers.get("Authorization") if headers is not None else None
