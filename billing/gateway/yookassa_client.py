"""The one module that touches the `yookassa` SDK, with its traps removed.

- The SDK sets no HTTP timeout: every call here is bounded by a connect and a read timeout, and
  as a whole by the call timeout, however slowly an answer trickles in (see `deadline`).
- The SDK invents a random Idempotence-Key per call: here a POST requires the caller's key.
- `Configuration.configure()` resets the URL to production when not given one, and is global:
  the client here takes its endpoint and credentials from its own config on every call.
- The SDK's transport failures surface as AttributeError and its retries only run over https:
  here there are no hidden retries, and every failure becomes a `GatewayError` that says whether
  the outcome at YooKassa is known.
"""

import logging
import re
import time
from dataclasses import dataclass, field

import requests
from urllib3.exceptions import NewConnectionError
from urllib3.util import Timeout
from yookassa import Configuration
from yookassa.client import ApiClient
from yookassa.domain.common import HttpVerb, RequestObject

from billing.errors import (
    GatewayError,
    ProviderObjectNotFound,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
)
from billing.gateway.deadline import CallDeadline, call_deadline, deadline_session

logger = logging.getLogger("billing.gateway")

# YooKassa's own pattern for the header (OpenAPI `IdempotenceKey`), read as intended.
_IDEMPOTENCE_KEY = re.compile(r"^[0-9A-Za-z+\-_.]{1,64}$")


@dataclass(frozen=True)
class YooKassaConfig:
    shop_id: str
    secret_key: str = field(repr=False)
    api_url: str
    connect_timeout: float
    read_timeout: float
    # The whole call, from connecting to the last byte of the answer.
    call_timeout: float


class _BoundedApiClient(ApiClient):
    """The SDK's ApiClient (auth header, user agent, request serialization) over bounded HTTP."""

    def __init__(self, config: YooKassaConfig) -> None:
        super().__init__()
        self.endpoint = config.api_url.rstrip("/")
        self.shop_id = config.shop_id
        self.shop_password = config.secret_key
        self.auth_token = None
        self._timeout = Timeout(connect=config.connect_timeout, read=config.read_timeout)
        self._call_timeout = config.call_timeout

    def request(self, method="", path="", query_params=None, headers=None, body: dict | None = None) -> dict:
        request_headers = self.prepare_request_headers(headers)
        started = time.monotonic()
        try:
            with call_deadline(self._call_timeout) as deadline, deadline_session() as session:
                response = session.request(
                    method,
                    self.endpoint + path,
                    params=query_params,
                    headers=request_headers,
                    json=body,
                    timeout=self._timeout,
                )
        except requests.RequestException as exc:
            _log(method, path, headers, f"failed: {type(exc).__name__}", started)
            raise _transport_error(exc, deadline) from exc
        if deadline.expired:
            # Cut short, an answer can still parse: headers end at the cut, and the body with them.
            _log(method, path, headers, f"cut at {deadline.seconds} s", started)
            raise _timed_out(deadline)
        _log(method, path, headers, response.status_code, started)
        if response.status_code != 200:
            raise _http_error(response)
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderOutcomeUnknown(
                "YooKassa answered 200 with a body that is not JSON.", http_status=200
            ) from exc


class YooKassaClient:
    """Raw YooKassa API v3 calls returning the JSON objects; see `YooKassaGateway` for the port."""

    def __init__(self, config: YooKassaConfig) -> None:
        self.config = config
        # ApiClient() insists on global credentials being set; ours override them per call.
        if Configuration.account_id is None and Configuration.auth_token is None:
            Configuration.configure(config.shop_id, config.secret_key, api_url=config.api_url)

    def get(self, path: str, params: dict | None = None) -> dict:
        return _BoundedApiClient(self.config).request(HttpVerb.GET, path, query_params=params)

    def post(
        self,
        path: str,
        body: dict | None,
        *,
        idempotence_key: str,
        checked_as: type[RequestObject] | None = None,
    ) -> dict:
        """POST `body` as it is; `checked_as` is the SDK request model that validates it first.

        The model only validates: sent, it would carry amounts through float (`Amount.value`).
        """
        if not isinstance(idempotence_key, str) or not _IDEMPOTENCE_KEY.match(idempotence_key):
            raise ValueError(f"Idempotence-Key must be 1-64 characters of [0-9A-Za-z+-_.], got {idempotence_key!r}.")
        if checked_as is not None:
            try:
                checked_as(body).validate()
            except (TypeError, ValueError) as exc:
                raise ProviderRejected(f"Request refused before sending: {exc}") from exc
        return _BoundedApiClient(self.config).request(
            HttpVerb.POST, path, headers={"Idempotence-Key": idempotence_key}, body=body
        )


def _transport_error(exc: requests.RequestException, deadline: CallDeadline) -> GatewayError:
    if isinstance(exc, requests.ConnectTimeout) or _never_connected(exc):
        return ProviderUnavailable(f"Could not reach YooKassa: {type(exc).__name__}.")
    if deadline.expired:
        return _timed_out(deadline)
    if isinstance(exc, requests.Timeout):
        return ProviderOutcomeUnknown("YooKassa did not answer in time; the request may have been carried out.")
    return ProviderOutcomeUnknown(f"The connection to YooKassa failed mid-request ({type(exc).__name__}).")


def _timed_out(deadline: CallDeadline) -> ProviderOutcomeUnknown:
    return ProviderOutcomeUnknown(
        f"YooKassa did not answer in time (a call may take {deadline.seconds} s at most); "
        "the request may have been carried out."
    )


def _never_connected(exc: requests.RequestException) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _http_error(response: requests.Response) -> GatewayError:
    try:
        error = response.json()
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    status = response.status_code
    description = error.get("description") or response.reason or f"HTTP {status}"
    retry_after_ms = error.get("retry_after")
    details = {
        "http_status": status,
        "provider_code": error.get("code"),
        "parameter": error.get("parameter"),
        "retry_after": retry_after_ms / 1000 if isinstance(retry_after_ms, int | float) else None,
    }
    message = f"YooKassa answered {status}: {description}"
    if status == 429:
        return ProviderUnavailable(message, **details)
    if status == 202 or status >= 500:
        return ProviderOutcomeUnknown(message, **details)
    if status == 404:
        return ProviderObjectNotFound(message, **details)
    if 400 <= status < 500:
        if status in (401, 403):
            logger.error("YooKassa refused our credentials or rights: %s", message)
        return ProviderRejected(message, **details)
    return ProviderOutcomeUnknown(message, **details)


def _log(method, path: str, headers: dict | None, result, started: float) -> None:
    key = (headers or {}).get("Idempotence-Key")
    logger.info(
        "yookassa %s %s key=%s -> %s in %.0f ms", method, path, key, result, (time.monotonic() - started) * 1000
    )
