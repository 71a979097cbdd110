"""Event deliveries to a local receiver: deliveries per second, and the lag from commit to arrival.

Three numbers side by side, each the min / median / max of `--runs` runs (default 3) at `--events`
events (default 1,000), against one receiver (a threaded http.server verifying every message with
`standardwebhooks`, as Auth would):

- baseline, sequential: a plain `requests` loop posting the same pre-signed messages, one session;
- baseline, parallel: the same messages from DELIVERY_BATCH_SIZE threads (what one worker sends at once);
- the service: the events committed to the outbox first, then the fan-out (one delivery row per
  event), then `deliveries.tasks.deliver_events` (claim with SKIP LOCKED, sign, POST, record the
  attempts) until all are delivered; both timed, the ANALYZE between them not (see `_analyze`);
- lag: events committed one by one by a producer thread at `--rate` a second while a worker loop runs
  `deliver_events` back to back; commit -> arrival at the receiver, p50 / p99 / max. A real worker
  adds django-q2's poll (Q_CLUSTER poll, 0.5 s) after the commit's hint, or the one-minute schedule.

Run from the repository root (PostgreSQL: the lag run commits from a second thread):

    DJANGO_SETTINGS_MODULE=config.settings.test \\
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/billing_bench .venv/bin/python bench/deliveries.py
"""

import argparse
import base64
import os
import secrets
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Receiver:
    def __init__(self, secret: str) -> None:
        from standardwebhooks.webhooks import Webhook

        self.webhook = Webhook(secret)
        self.arrived: dict[str, float] = {}
        self.failures = 0
        self.lock = threading.Lock()

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as any real receiver

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    receiver.webhook.verify(body, {k.lower(): v for k, v in self.headers.items()})
                    status = 200
                except Exception:
                    status = 401
                with receiver.lock:
                    if status == 200:
                        receiver.arrived.setdefault(self.headers["webhook-id"], time.time())
                    else:
                        receiver.failures += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/events"

    def reset(self) -> None:
        with self.lock:
            self.arrived.clear()
            self.failures = 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--rate", type=float, default=100, help="events committed per second in the lag run (default 100)"
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    # This process is the worker: the commit hints would run the task inline (test settings).
    settings.BILLING_EVENT_LISTENERS = []
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    print(f"database: {connection.vendor} (throwaway); {args.events} events, {args.runs} runs")
    print(f"DELIVERY_BATCH_SIZE={settings.DELIVERY_BATCH_SIZE}")
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    receiver = Receiver(secret)
    server, url = receiver.serve()
    results: dict[str, list[float]] = {"sequential": [], "parallel": [], "service": []}
    lags: list[list[float]] = []
    try:
        from deliveries.models import Endpoint

        endpoint = Endpoint.objects.create(name="bench", url=url, secret=secret, event_types=["payment.succeeded"])
        for run in range(args.runs):
            results["sequential"].append(baseline(receiver, endpoint, args.events, threads=1))
            results["parallel"].append(baseline(receiver, endpoint, args.events, threads=settings.DELIVERY_BATCH_SIZE))
            results["service"].append(service(receiver, args.events))
            lags.append(lag(receiver, args.events, args.rate))
            print(f"run {run + 1}: " + ", ".join(f"{name} {values[-1]:.0f}/s" for name, values in results.items()))
    finally:
        server.shutdown()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
    print("\ndeliveries per second (min / median / max):")
    for name, values in results.items():
        print(f"  {name:<11} {min(values):7.0f} {statistics.median(values):7.0f} {max(values):7.0f}")
    ratio = [s / p for s, p in zip(results["service"], results["parallel"], strict=True)]
    print(f"  service / parallel baseline: {statistics.median(ratio):.2f} (median)")
    print("lag from commit to arrival, ms (min / median / max over runs):")
    for label, pick in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
        values = [percentile(run, pick) * 1000 for run in lags]
        print(f"  {label}  {min(values):7.1f} {statistics.median(values):7.1f} {max(values):7.1f}")
    return 0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def baseline(receiver: Receiver, endpoint, count: int, *, threads: int) -> float:
    """The same signed messages, posted by a bare requests loop."""
    import json

    import requests

    from deliveries.services import sign

    receiver.reset()
    messages = []
    for index in range(count):
        body = json.dumps({"type": "payment.succeeded", "data": {"event_id": index}}).encode()
        messages.append((body, sign(endpoint, f"msg_base_{uuid.uuid4().hex}", body)))
    local = threading.local()

    def post(message) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        session.post(endpoint.url, data=message[0], headers=message[1], timeout=(3, 10)).raise_for_status()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(post, messages))
    elapsed = time.perf_counter() - start
    assert len(receiver.arrived) == count, (len(receiver.arrived), receiver.failures)
    return count / elapsed


def _record(count: int) -> None:
    from billing.models import BillingEvent

    BillingEvent.objects.bulk_create(
        BillingEvent(type="payment.succeeded", viewer_id=uuid.uuid4(), payload={"amount": "299.00"})
        for _ in range(count)
    )


def _clear() -> None:
    from billing.models import BillingEvent
    from deliveries.models import Delivery

    Delivery.objects.all().delete()
    BillingEvent.objects.all().delete()


def _analyze() -> None:
    """This server runs without autovacuum (bench/README.md): fresh planner statistics, as
    autovacuum would keep them, or the claim's anti-join is planned for empty tables."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE billing_billingevent, deliveries_delivery, deliveries_endpoint")


def service(receiver: Receiver, count: int) -> float:
    from deliveries import services, tasks
    from deliveries.models import Delivery, DeliveryStatus

    _clear()
    receiver.reset()
    _record(count)
    start = time.perf_counter()
    services.delivery_create_for_events()
    fan_out = time.perf_counter() - start
    _analyze()
    start = time.perf_counter()
    while len(receiver.arrived) < count or Delivery.objects.filter(status=DeliveryStatus.PENDING).exists():
        tasks.deliver_events()
    elapsed = fan_out + time.perf_counter() - start
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == count
    return count / elapsed


def lag(receiver: Receiver, count: int, rate: float) -> list[float]:
    from django.db import connections

    from billing.models import BillingEvent
    from deliveries import tasks

    # No ANALYZE here: the emptied tables' statistics would plan the claim for empty tables; the
    # service run's (1,000 rows) are what autovacuum would keep.
    _clear()
    receiver.reset()
    committed: dict[int, float] = {}
    done = threading.Event()

    def produce() -> None:
        try:
            for index in range(count):
                event = BillingEvent.objects.create(type="payment.succeeded", viewer_id=uuid.uuid4(), payload={})
                committed[event.id] = time.time()  # autocommit: committed when create() returns
                time.sleep(max(0.0, (index + 1) / rate - (time.time() - started)))
        finally:
            connections.close_all()
            done.set()

    started = time.time()
    producer = threading.Thread(target=produce)
    producer.start()
    while not done.is_set() or len(receiver.arrived) < count:
        tasks.deliver_events()
    producer.join()
    from deliveries.models import Delivery

    ids = dict(Delivery.objects.values_list("event_id", "endpoint_id"))
    return [receiver.arrived[f"msg_billing_{event_id}_{ids[event_id]}"] - at for event_id, at in committed.items()]


if __name__ == "__main__":
    sys.exit(main())
