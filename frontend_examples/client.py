"""A script client of the billing API, as a TV app or a backend of the cinema would use it.

    TOKEN=$(.venv/bin/python manage.py viewer_token)
    .venv/bin/python frontend_examples/client.py --token "$TOKEN" plans
    .venv/bin/python frontend_examples/client.py --token "$TOKEN" subscribe basic-monthly
    .venv/bin/python frontend_examples/client.py --token "$TOKEN" status
    .venv/bin/python frontend_examples/client.py --token "$TOKEN" cancel --now

Every money mutation sends a fresh idempotency key, and a retry after a network failure sends the
same one again: the server returns the first result instead of charging twice. `subscribe` watches
the payment live over the GraphQL websocket, and polls only if the websocket cannot be used.
"""

import argparse
import json
import sys
import time
import uuid

import requests
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

WATCH_PAYMENT = "subscription($id: ID!) { payment(id: $id) { status cancellationReason } }"
# YooKassa may have done it (PROVIDER_OUTCOME_UNKNOWN) or could not be asked (PROVIDER_UNAVAILABLE):
# send the very same request again, with the SAME idempotency key (never a new one): the answer is
# then that same operation, made once.
RETRY_SAME_KEY = {"PROVIDER_OUTCOME_UNKNOWN", "PROVIDER_UNAVAILABLE"}


class BillingClient:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/") + "/graphql/"
        self.websocket_url = "ws" + self.url.removeprefix("http")
        self.headers = {"Authorization": f"Bearer {token}"}

    def execute(self, query: str, variables: dict | None = None, *, attempts: int = 3) -> dict:
        """POST the operation; on a network failure, send the very same body again (same keys)."""
        body = {"query": query, "variables": variables or {}}
        for attempt in range(1, attempts + 1):
            try:
                response = requests.post(self.url, json=body, headers=self.headers, timeout=30)
                response.raise_for_status()
                break
            except requests.ConnectionError:
                if attempt == attempts:
                    raise
                time.sleep(attempt)
        answer = response.json()
        if answer.get("errors"):
            raise SystemExit(_messages(answer["errors"]))
        return answer["data"]

    def watch(self, query: str, variables: dict, *, attempts: int = 5) -> dict | None:
        """Run a subscription over the websocket (graphql-transport-ws) until the server completes it;
        return the data of its last answer. A retryable error (SERVICE_UNAVAILABLE: the server cannot
        read the database just now) subscribes again after the delay the server asks for."""
        for attempt in range(1, attempts + 1):
            data, retry_after = self._watch_once(query, variables)
            if retry_after is None:
                return data
            if attempt < attempts:
                print(f"The server is busy; watching again in {retry_after} s.")
                time.sleep(retry_after)
        raise SystemExit("The server kept answering SERVICE_UNAVAILABLE.")

    def _watch_once(self, query: str, variables: dict) -> tuple[dict | None, float | None]:
        """(the data of the last answer, None) once completed; (None, seconds) on a retryable error."""
        with connect(self.websocket_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as socket:
            # Browsers cannot set headers on a websocket: the token goes in connection_init's payload.
            socket.send(json.dumps({"type": "connection_init", "payload": self.headers}))
            if json.loads(socket.recv(timeout=10))["type"] != "connection_ack":
                raise SystemExit("The server refused the websocket.")
            subscribe = {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
            socket.send(json.dumps(subscribe))
            data = None
            for message in map(json.loads, socket):
                if message["type"] == "ping":
                    socket.send(json.dumps({"type": "pong"}))
                elif message["type"] == "error":
                    raise SystemExit(_messages(message["payload"]))
                elif message["type"] == "next":
                    errors = message["payload"].get("errors")
                    if errors and all((error.get("extensions") or {}).get("retryable") for error in errors):
                        return None, max(error["extensions"].get("retryAfterSeconds", 5) for error in errors)
                    if errors:
                        raise SystemExit(_messages(errors))
                    data = message["payload"]["data"]
                elif message["type"] == "complete":
                    return data, None
        raise WebSocketException("the websocket closed before the subscription completed")


def _messages(errors: list[dict]) -> str:
    return "; ".join(error["message"] for error in errors)


def plans(client: BillingClient, args) -> None:
    for plan in client.execute("{ plans { code name price { amount currency } period { unit count } } }")["plans"]:
        period = f"{plan['period']['count']} {plan['period']['unit'].lower()}"
        print(f"{plan['code']:20} {plan['name']:20} {plan['price']['amount']} {plan['price']['currency']} / {period}")


def subscribe(client: BillingClient, args) -> None:
    plan_id = next((p["id"] for p in client.execute("{ plans { id code } }")["plans"] if p["code"] == args.plan), None)
    if plan_id is None:
        raise SystemExit(f"No plan {args.plan!r}: see `plans`.")
    payload = mutate(
        client,
        """mutation($input: SubscribeInput!) {
             subscribe(input: $input) { payment { id status confirmationUrl } errors { code message } } }""",
        {"input": {"planId": plan_id, "returnUrl": args.return_url, "idempotencyKey": str(uuid.uuid4())}},
        "subscribe",
    )
    if payload["errors"]:
        raise SystemExit(f"{payload['errors'][0]['code']}: {payload['errors'][0]['message']}")
    print(f"Pay at {payload['payment']['confirmationUrl']}")
    print("Waiting for the payment (Ctrl-C to stop)...")
    payment_id = payload["payment"]["id"]
    try:
        # The server sends the payment now and at each change, and completes once it is settled.
        payment = client.watch(WATCH_PAYMENT, {"id": payment_id})["payment"]
    except (OSError, WebSocketException) as error:
        print(f"No live status ({error}); asking every 2 s instead.")
        payment = poll_until_settled(client, payment_id)
    print(payment["status"], payment["cancellationReason"] or "")


def mutate(client: BillingClient, query: str, variables: dict, field: str, *, tries: int = 3) -> dict:
    """A money mutation's payload; retried as RETRY_SAME_KEY says, with the same variables (key)."""
    attempt = 1
    while True:
        payload = client.execute(query, variables)[field]
        errors = payload["errors"]
        if not errors or attempt == tries or any(error["code"] not in RETRY_SAME_KEY for error in errors):
            return payload
        print(f"{errors[0]['code']}: asking again with the same key in {attempt} s.")
        time.sleep(attempt)
        attempt += 1


def poll_until_settled(client: BillingClient, payment_id: str) -> dict:
    while True:
        payment = client.execute(
            "query($id: ID!) { payment(id: $id) { status cancellationReason } }", {"id": payment_id}
        )["payment"]
        if payment["status"] in ("SUCCEEDED", "CANCELED"):
            return payment
        time.sleep(2)


def status(client: BillingClient, args) -> None:
    me = client.execute(
        """{ me {
             activeSubscription { id status currentPeriodEnd autoRenew nextPaymentAt plan { name } }
             payments(first: 10) {
               edges { node { createdAt kind status amount { amount } refundedAmount { amount } } }
             }
        } }"""
    )["me"]
    print(json.dumps(me, indent=2, ensure_ascii=False))


def cancel(client: BillingClient, args) -> None:
    subscription = client.execute("{ me { activeSubscription { id } } }")["me"]["activeSubscription"]
    if subscription is None:
        raise SystemExit("No active subscription.")
    quote = client.execute(
        "query($id: ID!) { refundQuote(subscriptionId: $id) { amount { amount currency } rule } }",
        {"id": subscription["id"]},
    )["refundQuote"]
    mode = "NOW_WITH_REFUND" if args.now else "AT_PERIOD_END"
    if args.now:
        print(f"Refund: {quote['amount']['amount']} {quote['amount']['currency']} ({quote['rule'].lower()})")
    payload = mutate(
        client,
        """mutation($input: CancelSubscriptionInput!) {
             cancelSubscription(input: $input) {
               subscription { status } refund { status } errors { code message }
             } }""",
        {"input": {"subscriptionId": subscription["id"], "mode": mode, "idempotencyKey": str(uuid.uuid4())}},
        "cancelSubscription",
    )
    print(json.dumps(payload, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="the viewer's JWT from the Auth service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plans").set_defaults(run=plans)
    subscribe_parser = commands.add_parser("subscribe")
    subscribe_parser.add_argument("plan", help="a plan code, e.g. basic-monthly")
    subscribe_parser.add_argument("--return-url", default="http://localhost:8000/examples/checkout/")
    subscribe_parser.set_defaults(run=subscribe)
    commands.add_parser("status").set_defaults(run=status)
    cancel_parser = commands.add_parser("cancel")
    cancel_parser.add_argument("--now", action="store_true", help="now, with the refund the rule gives")
    cancel_parser.set_defaults(run=cancel)
    args = parser.parse_args(argv)
    args.run(BillingClient(args.url, args.token), args)


if __name__ == "__main__":
    sys.exit(main())
