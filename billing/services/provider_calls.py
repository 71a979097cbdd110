"""Asking YooKassa to create something whose row, and key, are already committed."""

import logging
from collections.abc import Callable
from typing import TypeVar

from billing.errors import GatewayError, ProviderRejected

logger = logging.getLogger(__name__)

Row = TypeVar("Row")
Answer = TypeVar("Answer")


def provider_create(
    row: Row,
    *,
    call: Callable[[], Answer],
    apply: Callable[[Answer], Row],
    reject: Callable[[ProviderRejected], Row],
) -> tuple[Row, GatewayError | None]:
    """Make `call` (it sends the row's own Idempotence-Key) and bring the row to the outcome.

    An answer is applied; a refusal ends the row (it never existed at YooKassa); anything else
    leaves it as it is, for a retry or the janitor to send again under the same key.
    """
    try:
        answer = call()
    except ProviderRejected as error:
        if error.parameter == "Idempotence-Key":
            # The key is in use: something may exist under it. Never give up on it here.
            logger.error("YooKassa refused the key of %s: %s", row, error)
            return row, error
        return reject(error), error
    except GatewayError as error:
        logger.warning("%s not confirmed by YooKassa yet (%s); it keeps its key", row, error)
        return row, error
    return apply(answer), None
