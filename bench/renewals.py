"""Benchmark: renew N due subscriptions against the sandbox; renewals per second, memory, queries.

    DJANGO_SETTINGS_MODULE=config.settings.test \\
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/billing_bench \\
    .venv/bin/python bench/renewals.py --subscriptions 1000 10000

For each size it empties a throwaway database (Django's test database: `test_<name>`, created at
the start and destroyed at the end), seeds N active auto-renewing subscriptions whose periods end
within the lead time, each with its own card saved at the sandbox (bulk inserts, no checkout),
runs `subscription_renew_due` (one worker, pages of 100, the way the scheduled task does) until
nothing is due, checks that every subscription was charged exactly once and extended from its old
end, and prints the time per renewal, where it went, SQL queries per renewal and peak memory.

The sandbox runs in this process (threads), so its CPU time is part of the measurement: the
numbers are the service's own cost plus an instant YooKassa, not what real YooKassa's latency
allows (that is bounded by the number of workers, see bench/README.md).
"""

import argparse
import os
import resource
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--subscriptions", type=int, nargs="+", default=[1000], help="sizes to run, in order (default 1000)"
    )
    parser.add_argument("--page-size", type=int, default=100, help="subscriptions locked per page (default 100)")
    parser.add_argument("--time-budget", type=float, default=3600, help="seconds allowed per size (default 3600)")
    parser.add_argument("--slice", type=float, default=5, help="seconds between progress lines (default 5)")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace Python allocations (peak per size; slows the run)"
    )
    parser.add_argument("--keep-gateway-logs", action="store_true", help="leave the per-call INFO logs on")
    parser.add_argument(
        "--mail-inline",
        action="store_true",
        help="also compose and send the renewals' emails inside the loop (the test settings run tasks inline)",
    )
    parser.add_argument(
        "--stale-stats",
        action="store_true",
        help="PostgreSQL: do not ANALYZE between slices (what a server without autovacuum does; see README)",
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    import logging

    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    if not args.keep_gateway_logs:
        # One INFO line per YooKassa call would be most of what this process writes.
        logging.getLogger("billing.gateway").setLevel(logging.WARNING)
        logging.getLogger("sandbox").setLevel(logging.WARNING)

    if not args.mail_inline:
        # The worker hands the emails a renewal's commit asks for to mail's own task, on another
        # worker; with the test settings' inline tasks they would be composed and sent in this loop.
        from django.conf import settings

        settings.BILLING_EVENT_LISTENERS = [
            listener for listener in settings.BILLING_EVENT_LISTENERS if not listener.startswith("mail.")
        ]
    vendor = connection.vendor
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    print(f"database: {vendor} {connection.settings_dict['NAME']} (throwaway)")
    results = []
    try:
        with sandbox_server() as server:
            for size in args.subscriptions:
                results.append(run_size(server, size, args))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
    print_summary(vendor, results)
    return 0 if all(result.ok for result in results) else 1


@contextmanager
def sandbox_server():
    from django.conf import settings

    from billing.gateway import get_gateway
    from sandbox.config import SandboxConfig
    from sandbox.server import SandboxServer

    with SandboxServer(SandboxConfig(port=0, notification_url=None)) as server:
        settings.YOOKASSA_API_URL = server.api_url
        settings.YOOKASSA_SHOP_ID = server.config.shop_id
        settings.YOOKASSA_SECRET_KEY = server.config.secret_key
        get_gateway.cache_clear()
        yield server


# --- one size ------------------------------------------------------------------------------------


@dataclass
class Phases:
    """Wall time and SQL queries spent in each part of a renewal."""

    seconds: Counter = field(default_factory=Counter)
    queries: Counter = field(default_factory=Counter)
    current: list[str] = field(default_factory=lambda: ["other"])

    def count_query(self, execute, sql, params, many, context):
        self.queries[self.current[-1]] += 1
        return execute(sql, params, many, context)

    def timed(self, name: str, function):
        def wrapper(*args, **kwargs):
            self.current.append(name)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.current.pop()

        return wrapper


@dataclass
class Result:
    size: int
    seed_seconds: float
    seconds: float
    charged: int
    queries: int
    phases: Phases
    seeded_rss_mb: float
    maxrss_mb: float
    traced_peak_mb: float | None
    ok: bool

    @property
    def per_second(self) -> float:
        return self.charged / self.seconds if self.seconds else 0.0

    @property
    def ms_per_renewal(self) -> float:
        return 1000 * self.seconds / self.charged if self.charged else float("nan")


def run_size(server, size: int, args) -> Result:
    from django.core.management import call_command
    from django.db import connection

    from billing import clock
    from billing.gateway import get_gateway
    from billing.services import payments, renewals

    call_command("flush", interactive=False, verbosity=0)
    server.reset()
    as_of = clock.domain_now()
    started = time.perf_counter()
    plan = seed(server, size, as_of)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # what autovacuum would have done to tables this size
    seed_seconds = time.perf_counter() - started
    seeded_rss = maxrss_mb()
    print(f"\n== {size} due subscriptions (seeded in {seed_seconds:.1f} s; ru_maxrss {seeded_rss:.0f} MB)")

    phases = Phases()
    gateway = get_gateway()
    originals = (renewals._open_renewals, renewals.payment_create_at_provider)
    # Opening pages: lock due subscriptions, insert their payments. Charging: the call to
    # YooKassa (HTTP to the sandbox and its work), then applying the answer (payment, subscription,
    # events) inside payment_create_at_provider.
    renewals._open_renewals = phases.timed("open page", renewals._open_renewals)
    renewals.payment_create_at_provider = phases.timed("charge + apply", payments.payment_create_at_provider)
    gateway.create_payment = phases.timed("yookassa call", gateway.create_payment)
    if args.tracemalloc:
        tracemalloc.start()
    analyze = connection.vendor == "postgresql" and not args.stale_stats
    charged, seconds = 0, 0.0
    try:
        with connection.execute_wrapper(phases.count_query), clock.moved_to(as_of):
            while seconds < args.time_budget:
                slice_started = time.perf_counter()
                report = renewals.subscription_renew_due(page_size=args.page_size, time_budget=args.slice)
                slice_seconds = time.perf_counter() - slice_started
                seconds += slice_seconds
                if report.failed_ids or report.unknown or report.declined:
                    print(f"   problems: {report.as_dict()}")
                charged += report.charged
                if not report.charged:
                    break
                print(
                    f"   {charged:>6} charged, {seconds:6.1f} s: this slice "
                    f"{report.charged / slice_seconds:6.0f} renewals/s"
                )
                if analyze:
                    # Autovacuum's job on a production server (off on some test servers): without
                    # fresh statistics the planner keeps believing the payment table is empty.
                    with connection.cursor() as cursor:
                        cursor.execute("ANALYZE billing_payment, billing_subscription, billing_billingevent")
        traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
        renewed_rss = maxrss_mb()
    finally:
        if args.tracemalloc:
            tracemalloc.stop()
        renewals._open_renewals, renewals.payment_create_at_provider = originals
        del gateway.create_payment
    ok = check(server, size, plan)
    result = Result(
        size=size,
        seed_seconds=seed_seconds,
        seconds=seconds,
        charged=charged,
        queries=sum(phases.queries.values()),
        phases=phases,
        seeded_rss_mb=seeded_rss,
        maxrss_mb=renewed_rss,
        traced_peak_mb=traced_peak,
        ok=ok,
    )
    print_result(result)
    return result


def seed(server, size: int, as_of):
    """`size` due subscriptions, each with a card saved at the sandbox; bulk inserts only."""
    from billing.models import PaymentMethod, Subscription, SubscriptionStatus
    from plans.demo import plan_load_demo_catalog
    from sandbox.emulator import new_object_id

    plan = next(plan for plan in plan_load_demo_catalog() if plan.code == "basic-monthly")
    method_ids = [new_object_id("000f") for _ in range(size)]
    with server.store.transaction():
        for method_id in method_ids:
            server.store.save_payment_method(
                {
                    "id": method_id,
                    "type": "bank_card",
                    "saved": True,
                    "status": "active",
                    "title": "Bank card *4444",
                    "card": {
                        "first6": "555555",
                        "last4": "4444",
                        "expiry_year": "2030",
                        "expiry_month": "12",
                        "card_type": "MasterCard",
                        "issuer_country": "RU",
                    },
                    "payment_id": method_id,
                    "revoked": False,
                    "decline_reason": None,
                }
            )
    viewers = [uuid.uuid4() for _ in range(size)]
    methods = PaymentMethod.objects.bulk_create(
        (
            PaymentMethod(
                viewer_id=viewer,
                provider_method_id=method_id,
                type="bank_card",
                title="Bank card *4444",
                card_last4="4444",
                card_type="MasterCard",
                expiry_month="12",
                expiry_year="2030",
            )
            for viewer, method_id in zip(viewers, method_ids, strict=True)
        ),
        batch_size=1000,
    )
    subscriptions = []
    for n, (viewer, method) in enumerate(zip(viewers, methods, strict=True)):
        # Spread over the day before the renewal lead time ends, some already past their end.
        end = as_of + timedelta(hours=20) - timedelta(seconds=n * 86400 // size)
        subscriptions.append(
            Subscription(
                viewer_id=viewer,
                viewer_email=f"viewer{n}@example.com",
                plan=plan,
                status=SubscriptionStatus.ACTIVE,
                current_period_start=end - timedelta(days=30),
                current_period_end=end,
                auto_renew=True,
                payment_method=method,
            )
        )
    Subscription.objects.bulk_create(subscriptions, batch_size=1000)
    return plan


def check(server, size: int, plan) -> bool:
    """Every subscription charged exactly once, here and at the sandbox, and extended from its old end."""
    from django.db.models import F

    from billing.models import Payment, PaymentKind, PaymentStatus, Subscription

    renewals = Payment.objects.filter(kind=PaymentKind.RENEWAL)
    charges = server.store.recent_payments(size + 1)
    per_subscription = Counter(charge["metadata"]["subscription_id"] for charge in charges)
    problems = []
    if len(charges) != size or set(per_subscription.values()) != {1}:
        problems.append(f"{len(charges)} charges at the sandbox for {len(per_subscription)} subscriptions")
    if {charge["status"] for charge in charges} != {"succeeded"}:
        problems.append("not every charge at the sandbox succeeded")
    if renewals.count() != size or renewals.filter(status=PaymentStatus.SUCCEEDED).count() != size:
        problems.append(f"{renewals.filter(status=PaymentStatus.SUCCEEDED).count()} of {size} renewals succeeded")
    ours = set(renewals.values_list("provider_payment_id", flat=True))
    if ours != {charge["id"] for charge in charges}:
        problems.append("our payments and the sandbox's charges differ")
    extended = Subscription.objects.filter(
        payments__kind=PaymentKind.RENEWAL,
        payments__status=PaymentStatus.SUCCEEDED,
        payments__period_start=F("current_period_start"),
    ).count()
    if extended != size:
        problems.append(f"{extended} of {size} subscriptions start their new period at the old end")
    if problems:
        print("   CHECK FAILED: " + "; ".join(problems))
    else:
        print(f"   check: {size} charged exactly once at the sandbox, {size} periods extended from the old end")
    return not problems


# --- output ----------------------------------------------------------------------------------------


def print_result(result: Result) -> None:
    phases = result.phases
    charges = max(result.charged, 1)
    print(
        f"   {result.charged} renewals in {result.seconds:.1f} s: {result.per_second:.0f} renewals/s, "
        f"{result.ms_per_renewal:.2f} ms per renewal"
    )
    print(f"   SQL queries: {result.queries / charges:.1f} per renewal ({result.queries} in all)")
    apply_seconds = phases.seconds["charge + apply"] - phases.seconds["yookassa call"]
    for name, seconds, queries in (
        ("open page", phases.seconds["open page"], phases.queries["open page"]),
        ("yookassa call", phases.seconds["yookassa call"], phases.queries["yookassa call"]),
        ("apply answer", apply_seconds, phases.queries["charge + apply"]),
    ):
        print(
            f"     {name:<14} {1000 * seconds / charges:6.2f} ms per renewal, "
            f"{queries / charges:4.1f} queries per renewal"
        )
    memory = (
        f"   peak memory: ru_maxrss {result.maxrss_mb:.0f} MB after the renewals "
        f"({result.seeded_rss_mb:.0f} MB after seeding; the whole process, sandbox included)"
    )
    if result.traced_peak_mb is not None:
        memory += f", tracemalloc peak during the renewals {result.traced_peak_mb:.1f} MB"
    print(memory)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_summary(vendor: str, results: list[Result]) -> None:
    print(f"\nsummary ({vendor}):")
    print(f"{'N':>8} {'seconds':>9} {'renewals/s':>11} {'ms/renewal':>11} {'queries/renewal':>16} {'maxrss MB':>10}")
    for result in results:
        print(
            f"{result.size:>8} {result.seconds:>9.1f} {result.per_second:>11.0f} {result.ms_per_renewal:>11.2f} "
            f"{result.queries / max(result.charged, 1):>16.1f} {result.maxrss_mb:>10.0f}"
            + ("" if result.ok else "  CHECK FAILED")
        )


if __name__ == "__main__":
    sys.exit(main())
