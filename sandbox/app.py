"""Requests to the sandbox, independent of the HTTP server that carries them.

Three surfaces: the API (`/v3/...`, what the SDK talks to), the payment page (`/checkout/...`,
what the payer's browser sees) and the controls (`/sandbox/...`, fault switches and operator
actions for tests and developers). The API and the controls need the shop's Basic credentials.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs

from sandbox import pages
from sandbox.auth_demo import AuthDemo, AuthDemoEffect, fault_from_body
from sandbox.cards import TEST_CARDS
from sandbox.config import SandboxConfig
from sandbox.emulator import Emulator, RefundOutcome
from sandbox.errors import ApiError, invalid_request, not_found
from sandbox.faults import ApiEffect, Faults, fault_from_dict
from sandbox.store import Store, StoredResponse

logger = logging.getLogger(__name__)

MAX_IDEMPOTENCE_KEY_LENGTH = 64
# The spec's `IdempotenceKey` pattern, [0-9a-zA-Z+-_.]{1,64}, read as its authors meant it: "+-_"
# is three characters, not the range from "+" to "_" (which would let in "/", ":", "@"...). The
# stricter reading is the safe one for an emulator: whatever passes here passes at YooKassa.
_IDEMPOTENCE_KEY = re.compile(r"[0-9A-Za-z+\-_.]+")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    # Fault effects the HTTP layer carries out: wait before answering, send the answer a byte at a
    # time with this pause between bytes, or close without answering.
    delay: float = 0.0
    trickle: float = 0.0
    drop: bool = False

    @classmethod
    def json(cls, status: int, data: dict | list) -> "Response":
        return cls(status, json.dumps(data, ensure_ascii=False).encode())

    @classmethod
    def error(cls, error: ApiError) -> "Response":
        return cls.json(error.status, error.body())

    @classmethod
    def html(cls, body: str, status: int = 200) -> "Response":
        return cls(status, body.encode(), content_type="text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location: str) -> "Response":
        return cls(303, content_type="text/plain", headers={"Location": location})


_API_ROUTES: list[tuple[str, re.Pattern, str]] = [
    ("POST", re.compile(r"^/v3/payments$"), "payments.create"),
    ("GET", re.compile(r"^/v3/payments$"), "payments.list"),
    ("GET", re.compile(r"^/v3/payments/(?P<id>[^/]+)$"), "payments.get"),
    ("POST", re.compile(r"^/v3/payments/(?P<id>[^/]+)/capture$"), "payments.capture"),
    ("POST", re.compile(r"^/v3/payments/(?P<id>[^/]+)/cancel$"), "payments.cancel"),
    ("POST", re.compile(r"^/v3/refunds$"), "refunds.create"),
    ("GET", re.compile(r"^/v3/refunds$"), "refunds.list"),
    ("GET", re.compile(r"^/v3/refunds/(?P<id>[^/]+)$"), "refunds.get"),
    ("GET", re.compile(r"^/v3/me$"), "me.get"),
]


class SandboxApp:
    def __init__(self, config: SandboxConfig, store: Store, emulator: Emulator, faults: Faults) -> None:
        self.config = config
        self.store = store
        self.emulator = emulator
        self.faults = faults
        # The demo Auth service that billing's local run delivers its events to (sandbox/auth_demo.py).
        self.auth_demo = AuthDemo(config.auth_demo_secret)
        # Called with each authenticated API request as it arrives, before any fault or work: a
        # test sees the service's side at the very moment "YooKassa" is asked. A listener that
        # raises turns the request into a 500.
        self.listeners: list[Callable[[str, Request], None]] = []
        self._operations: dict[str, Callable[[dict, Request], dict]] = {
            "payments.create": lambda params, request: emulator.create_payment(_json_body(request)),
            "payments.list": lambda params, request: emulator.list_payments(request.query),
            "payments.get": lambda params, request: emulator.get_payment(params["id"]),
            "payments.capture": lambda params, request: emulator.capture_payment(params["id"], _json_body(request)),
            "payments.cancel": lambda params, request: emulator.cancel_payment(params["id"]),
            "refunds.create": lambda params, request: emulator.create_refund(_json_body(request)),
            "refunds.list": lambda params, request: emulator.list_refunds(request.query),
            "refunds.get": lambda params, request: emulator.get_refund(params["id"]),
            "me.get": lambda params, request: emulator.me(),
        }

    def __call__(self, request: Request) -> Response:
        if request.path.startswith("/v3/"):
            return self._api(request)
        if request.path.startswith("/checkout/"):
            return self._checkout(request)
        if request.path.startswith("/sandbox/"):
            return self._control(request)
        if request.path.startswith("/auth-demo/"):
            return self._auth_demo(request)
        if request.path == "/" and request.method == "GET":
            return Response.html(pages.index(self.store.recent_payments(20), TEST_CARDS.values(), self.config))
        return Response.error(not_found("Not found"))

    # --- API v3 ---------------------------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        # As at YooKassa: who is asking first (401 even for a path that does not exist), then what.
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        route = _match(request)
        if isinstance(route, Response):
            return route
        kind, params = route
        if request.method == "POST" and not _is_json(request):
            return Response.error(ApiError(415, "invalid_request", "Content-Type of a POST must be application/json"))
        for listener in list(self.listeners):
            listener(kind, request)

        fault = self.faults.take_api(kind)
        if fault is not None:
            logger.info("sandbox fault %s on %s %s", fault.effect, request.method, request.path)
            if fault.effect is ApiEffect.ERROR_429:
                return Response.error(ApiError(429, "too_many_requests", "Too many requests", retry_after_ms=1800))
            if fault.effect is ApiEffect.ERROR_202:
                return Response.error(
                    ApiError(
                        202,
                        "request_accepted",
                        "Request accepted, but not processed yet. Retry again with the same Idempotence-Key",
                        retry_after_ms=1800,
                    )
                )
            if fault.effect in (ApiEffect.ERROR_500, ApiEffect.DROP) and not fault.applied:
                return _fault_response(fault.effect)

        response = self._perform(kind, params, request)
        if fault is None:
            return response
        if fault.effect in (ApiEffect.ERROR_500, ApiEffect.DROP):
            return _fault_response(fault.effect)
        if fault.effect is ApiEffect.TRICKLE:
            response.trickle = fault.delay
        else:
            response.delay = fault.delay  # SLOW: done now, answered late
        return response

    def _perform(self, kind: str, params: dict, request: Request) -> Response:
        operation = self._operations[kind]
        if request.method != "POST":
            try:
                return Response.json(200, operation(params, request))
            except ApiError as error:
                return Response.error(error)

        key = request.headers.get("Idempotence-Key")
        if not key:
            return Response.error(invalid_request("Idempotence key is empty", "Idempotence-Key"))
        if len(key) > MAX_IDEMPOTENCE_KEY_LENGTH:
            return Response.error(
                invalid_request(
                    f"Idempotence key is too long. Max. length is {MAX_IDEMPOTENCE_KEY_LENGTH}", "Idempotence-Key"
                )
            )
        if not _IDEMPOTENCE_KEY.fullmatch(key):
            return Response.error(
                invalid_request(
                    "Idempotence key has an illegal format: use only 0-9, a-z, A-Z and + - _ .", "Idempotence-Key"
                )
            )
        try:
            fingerprint = _fingerprint(request)
        except ApiError as error:
            return Response.error(error)
        now = self.config.clock()
        with self.store.transaction():
            stored = self.store.get_response(key)
            if stored is not None and datetime.fromisoformat(stored.created_at) + self.config.idempotence_ttl > now:
                if stored.fingerprint != fingerprint:
                    return Response.error(invalid_request("Idempotence key duplicated", "Idempotence-Key"))
                return Response.json(stored.status, stored.body)
            try:
                status, body = 200, operation(params, request)
            except ApiError as error:
                status, body = error.status, error.body()
            self.store.save_response(key, StoredResponse(fingerprint, status, body, now.isoformat()))
        return Response.json(status, body)

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization")
        if not header:
            return Response.error(ApiError(401, "invalid_credentials", "Authorization header not found"))
        scheme, _, token = header.partition(" ")
        try:
            shop_id, _, secret = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            shop_id, secret = "", ""
        expected = f"{self.config.shop_id}:{self.config.secret_key}"
        if scheme != "Basic" or not hmac.compare_digest(f"{shop_id}:{secret}".encode(), expected.encode()):
            return Response.error(ApiError(401, "invalid_credentials", "Basic authentication failed"))
        return None

    # --- the payment page ---------------------------------------------------------------------

    def _checkout(self, request: Request) -> Response:
        match = re.fullmatch(r"/checkout/(?P<id>[^/]+)(?P<three_ds>/3ds)?", request.path)
        if match is None:
            return Response.html(pages.message("Not found", "There is no such page."), 404)
        payment_id = match["id"]
        try:
            if request.method == "GET":
                step = self.emulator.checkout_state(payment_id)
            elif request.method == "POST" and match["three_ds"]:
                step = self.emulator.confirm_three_d_secure(payment_id)
            elif request.method == "POST":
                form = parse_qs(request.body.decode("utf-8", "replace"))
                step = self.emulator.submit_card(
                    payment_id,
                    card_number=(form.get("card_number") or [""])[0],
                    expiry=(form.get("expiry") or [None])[0],
                    csc=(form.get("csc") or [None])[0],
                )
            else:
                return Response.html(pages.message("Not allowed", "Use GET or POST."), 405)
        except ApiError:
            return Response.html(pages.message("Payment not found", "This payment does not exist."), 404)

        payment = step.payment
        if step.needs_three_d_secure:
            return Response.html(pages.three_d_secure(payment, self.config))
        if payment["status"] == "pending":
            return Response.html(pages.checkout(payment, self.config, error=step.error), 400 if step.error else 200)
        if request.method == "POST" and step.return_url:
            return Response.redirect(step.return_url)
        return Response.html(pages.result(payment, step.return_url))

    # --- the demo Auth service -----------------------------------------------------------------

    def _auth_demo(self, request: Request) -> Response:
        demo = self.auth_demo
        if request.path == "/auth-demo/" and request.method == "GET":
            return Response.html(pages.auth_demo(demo.received(), demo.describe()["fault"]))
        if request.path == "/auth-demo/" and request.method == "POST":
            fault = demo.take_fault()
            if fault is not None and fault.effect is AuthDemoEffect.DOWN:
                return Response(0, drop=True)
            if fault is not None and fault.effect is AuthDemoEffect.ERROR_500:
                return Response.json(500, {"error": "the demo Auth service fails on purpose"})
            if fault is not None and fault.effect is AuthDemoEffect.GONE_410:
                return Response.json(410, {"error": "this endpoint is gone (demo fault switch)"})
            status, text = demo.receive(request.headers, request.body)
            response = Response(status, text.encode(), content_type="application/json")
            if fault is not None and fault.effect is AuthDemoEffect.SLOW:
                response.delay = fault.delay
            return response
        if request.path == "/auth-demo/faults":
            denied = self._authenticate(request)
            if denied is not None:
                return denied
            if request.method == "GET":
                return Response.json(200, demo.describe())
            if request.method == "DELETE":
                demo.clear()
                return Response.json(200, {})
            if request.method == "POST":
                try:
                    demo.set_fault(fault_from_body(_json_body(request)))
                except (TypeError, ValueError) as exc:
                    return Response.error(invalid_request(str(exc)))
                return Response.json(200, demo.describe())
        return Response.error(not_found("Not found"))

    # --- controls for tests and developers --------------------------------------------------------

    def _control(self, request: Request) -> Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        path, method = request.path, request.method
        try:
            body = _json_body(request) if method == "POST" else {}
            if path == "/sandbox/faults" and method == "GET":
                return Response.json(200, self.faults.describe())
            if path == "/sandbox/faults" and method == "POST":
                try:
                    fault = self.faults.add(fault_from_dict(body))
                except ValueError as exc:
                    raise invalid_request(str(exc)) from exc
                return Response.json(200, {"id": fault.id})
            if path == "/sandbox/faults" and method == "DELETE":
                self.faults.clear()
                return Response.json(200, {})
            if path == "/sandbox/reset" and method == "POST":
                self.reset()
                return Response.json(200, {})
            if path == "/sandbox/settings" and method == "POST":
                return Response.json(200, self.update_settings(body))
            if path == "/sandbox/notifications" and method == "GET":
                return Response.json(200, [_notification_view(n) for n in self.store.notifications()])
            action = re.fullmatch(
                r"/sandbox/(?P<what>payment_methods|payments|refunds)/(?P<id>[^/]+)/(?P<verb>\w+)", path
            )
            if action and method == "POST":
                return Response.json(200, self._act(action["what"], action["id"], action["verb"], body))
        except ApiError as error:
            return Response.error(error)
        return Response.error(not_found("Not found"))

    def _act(self, what: str, object_id: str, verb: str, body: dict) -> dict:
        actions = {
            ("payment_methods", "revoke"): lambda: self.emulator.revoke_payment_method(object_id),
            ("payment_methods", "decline"): lambda: self.emulator.set_payment_method_decline(
                object_id, body.get("reason")
            ),
            ("payments", "expire"): lambda: self.emulator.expire_payment(object_id),
            ("refunds", "settle"): lambda: self.emulator.settle_refund(object_id, body.get("status", "succeeded")),
        }
        action = actions.get((what, verb))
        if action is None:
            raise not_found("Unknown action")
        return action()

    def reset(self) -> None:
        self.store.reset()
        self.faults.clear()
        self.listeners.clear()
        self.auth_demo.reset()
        self.emulator.refund_outcome = RefundOutcome.SUCCEEDED

    def update_settings(self, body: dict) -> dict:
        if "notification_url" in body:
            self.config.notification_url = body["notification_url"] or None
        if "refund_outcome" in body:
            try:
                self.emulator.refund_outcome = RefundOutcome(body["refund_outcome"])
            except ValueError as exc:
                raise invalid_request("refund_outcome is succeeded, pending or canceled", "refund_outcome") from exc
        return {"notification_url": self.config.notification_url, "refund_outcome": self.emulator.refund_outcome}


def _match(request: Request) -> tuple[str, dict] | Response:
    path_known = False
    for method, pattern, kind in _API_ROUTES:
        match = pattern.match(request.path)
        if match is None:
            continue
        path_known = True
        if method == request.method:
            return kind, match.groupdict()
    if path_known:
        return Response.error(ApiError(405, "invalid_request", f"Method {request.method} is not allowed here"))
    return Response.error(not_found("Not found"))


def _is_json(request: Request) -> bool:
    media_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    return media_type == "application/json"


def _json_body(request: Request) -> dict:
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_request("Request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise invalid_request("Request body must be a JSON object")
    return body


def _fingerprint(request: Request) -> str:
    """Same key, same request: the same method, path and JSON body, whatever its key order."""
    canonical = json.dumps(_json_body(request), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{request.method} {request.path} {canonical}".encode()).hexdigest()


def _fault_response(effect: ApiEffect) -> Response:
    if effect is ApiEffect.DROP:
        return Response(0, drop=True)
    return Response.error(ApiError(500, "internal_server_error", "Internal server error"))


def _notification_view(notification) -> dict:
    return {
        "id": notification.id,
        "event": notification.event,
        "object_id": notification.object_id,
        "state": notification.state,
        "attempts": notification.attempts,
        "last_result": notification.last_result,
        "created_at": notification.created_at,
    }
