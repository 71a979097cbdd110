"""Checks on text that comes from clients and ends up in the database or in a redirect."""

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from billing.errors import InvalidReturnUrl

MAX_RETURN_URL_LENGTH = 2048

# One DNS label as browsers and YooKassa resolve it; IDNs come in their punycode (xn--) form.
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def has_control_characters(text: str) -> bool:
    """Control, format (zero-width, bidi), unassigned or surrogate code points: none belongs in a
    key or an address, PostgreSQL cannot store NUL, and a lone surrogate cannot even be encoded."""
    return any(unicodedata.category(character).startswith("C") for character in text)


def return_url_check(*, return_url: str) -> None:
    """YooKassa sends the viewer to this address: only to the cinema's own sites, never elsewhere."""
    if not _is_cinema_url(return_url or ""):
        raise InvalidReturnUrl(
            "The return URL must be an absolute https address on one of the cinema's sites.", field="returnUrl"
        )


def _is_cinema_url(url: str) -> bool:
    # Browsers read a backslash as a slash, and drop tabs and newlines: what we would check is not
    # where the viewer would go.
    if len(url) > MAX_RETURN_URL_LENGTH or has_control_characters(url) or "\\" in url:
        return False
    if any(character.isspace() for character in url):
        return False
    schemes = ["https", "http"] if settings.DEBUG else ["https"]
    try:
        URLValidator(schemes=schemes)(url)
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except (ValidationError, ValueError):
        return False
    host = parts.hostname or ""
    return not (parts.username or parts.password) and _is_plain_host(host) and _host_allowed(host)


def _is_plain_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return all(_HOST_LABEL.fullmatch(label) for label in host.split("."))
    return True


def _host_allowed(host: str) -> bool:
    for pattern in (pattern.lower() for pattern in settings.CHECKOUT_RETURN_URL_HOSTS):
        if host == pattern or (pattern.startswith(".") and (host.endswith(pattern) or host == pattern[1:])):
            return True
    return False
