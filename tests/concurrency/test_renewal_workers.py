"""Renewal workers and janitors as real processes, killed and racing, against one sandbox.

PostgreSQL only: SKIP LOCKED, the partial unique index `payment_one_renewal_per_period` and
several processes sharing one database are what is under test. Each worker is a real
`manage.py run_billing_jobs` process (a django-q2 worker runs the same service functions), so a
SIGKILL leaves the database exactly as a dead worker would: a renewal payment committed with its
Idempotence-Key, a charge at YooKassa, and nothing recorded in between.
"""

import collections
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from billing import clock
from billing.models import (
    BillingEvent,
    Payment,
    PaymentKind,
    PaymentMethod,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)
from billing.services import lifecycle, reconciliation, renewals
from billing.services.payments import payment_create_at_provider
from sandbox.emulator import new_object_id
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
# Past FIRST_PROVIDER_CHECK (5 minutes): the janitor looks at what a worker left open.
JANITOR_DELAY = timedelta(minutes=6)


def due_for_the_janitor_now() -> None:
    """The janitor keeps real time (YooKassa does): a janitor process looks at the rows left open
    now, instead of FIRST_PROVIDER_CHECK later."""
    Payment.objects.filter(status__in=[PaymentStatus.CREATING, PaymentStatus.PENDING]).update(
        next_check_at=timezone.now()
    )


# --- seeding -----------------------------------------------------------------------------------


def saved_card(method_id: str) -> dict:
    """A card saved at the sandbox, as Emulator._pay_with_card stores one."""
    return {
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


def seed_due_subscriptions(sandbox, plan, count: int, *, as_of: datetime) -> list[Subscription]:
    """`count` active, auto-renewing subscriptions due at `as_of`, each with its own saved card.

    Half ended a little before `as_of`, half end within the renewal lead time.
    """
    method_ids = [new_object_id("000f") for _ in range(count)]
    with sandbox.store.transaction():
        for method_id in method_ids:
            sandbox.store.save_payment_method(saved_card(method_id))
    viewers = [uuid.uuid4() for _ in range(count)]
    methods = PaymentMethod.objects.bulk_create(
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
    )
    subscriptions = []
    for n, (viewer, method) in enumerate(zip(viewers, methods, strict=True)):
        end = as_of + (timedelta(hours=-1) if n % 2 else timedelta(hours=2)) + timedelta(seconds=n)
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
    return Subscription.objects.bulk_create(subscriptions)


# --- real processes --------------------------------------------------------------------------------


def _database_url() -> str:
    db = connection.settings_dict  # the test database, once pytest-django created it
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Jobs:
    """Starts `run_billing_jobs` processes against the test database and the sandbox."""

    def __init__(self, sandbox) -> None:
        self.environment = {
            key: value for key, value in os.environ.items() if key not in ("YOOKASSA_SHOP_ID", "YOOKASSA_SECRET_KEY")
        } | {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": _database_url(),
            "YOOKASSA_API_URL": sandbox.api_url,
            "YOOKASSA_SANDBOX": "true",
            # The test settings make them up when absent; the same ones as this process, if any.
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(64),
            "JWT_SECRET": os.environ.get("JWT_SECRET") or secrets.token_urlsafe(48),
            "PYTHONUNBUFFERED": "1",
        }
        self.started: list[subprocess.Popen] = []

    def start(self, job: str, as_of: datetime) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_billing_jobs", "--job", job, "--as-of", as_of.isoformat()],
            env=self.environment,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        process.job = job
        self.started.append(process)
        return process

    @staticmethod
    def report(process: subprocess.Popen, *, timeout: float = 90) -> dict:
        """Wait for the process to finish well and return the JSON report its job printed."""
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, f"{process.job} worker exited with {process.returncode}:\n{out}\n{err}"
        prefix = f"{process.job}: "
        lines = [line for line in out.splitlines() if line.startswith(prefix)]
        assert len(lines) == 1, out
        return json.loads(lines[0].removeprefix(prefix))

    def run(self, job: str, as_of: datetime) -> dict:
        return self.report(self.start(job, as_of))

    def kill_leftovers(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.fixture
def jobs(sandbox):
    started = Jobs(sandbox)
    yield started
    started.kill_leftovers()


@pytest.fixture
def as_of():
    """The moment the workers' clock reads: now (the janitor's key age is measured on real time)."""
    return timezone.now().replace(microsecond=0)


# --- checks ------------------------------------------------------------------------------------------


def assert_renewed_once(subscriptions, plan) -> None:
    """Each subscription's next period starts where the old one ended, paid by exactly one charge."""
    old_ends = {subscription.pk: subscription.current_period_end for subscription in subscriptions}
    renewed = Subscription.objects.in_bulk(list(old_ends))
    for pk, old_end in old_ends.items():
        assert renewed[pk].status == SubscriptionStatus.ACTIVE
        assert renewed[pk].current_period_start == old_end
        assert renewed[pk].current_period_end == plan.period.end_after(old_end)
    payments = collections.Counter(
        Payment.objects.filter(kind=PaymentKind.RENEWAL, status=PaymentStatus.SUCCEEDED).values_list(
            "subscription_id", flat=True
        )
    )
    assert payments == dict.fromkeys(old_ends, 1)
    renewal_events = collections.Counter(
        BillingEvent.objects.filter(type="subscription.renewed").values_list("subscription_id", flat=True)
    )
    assert renewal_events == dict.fromkeys(old_ends, 1)


def assert_sandbox_charged_each_once(sandbox, subscriptions) -> None:
    """YooKassa holds one succeeded charge per subscription, and ours records exactly that one."""
    charges = sandbox.store.recent_payments(len(subscriptions) + 10)
    assert len(charges) == len(subscriptions)
    assert collections.Counter(charge["metadata"]["subscription_id"] for charge in charges) == {
        str(subscription.pk): 1 for subscription in subscriptions
    }
    assert {charge["status"] for charge in charges} == {"succeeded"}
    ours = dict(Payment.objects.filter(kind=PaymentKind.RENEWAL).values_list("pk", "provider_payment_id"))
    assert {charge["metadata"]["payment_id"]: charge["id"] for charge in charges} == {
        str(pk): provider_id for pk, provider_id in ours.items()
    }


def kill_after_the_charge(sandbox, worker: subprocess.Popen, *, charges: int = 1) -> None:
    """SIGKILL the worker once YooKassa has made the charge, while it still waits for the answer."""
    eventually(lambda: sandbox.store.count_payments() == charges, timeout=60, interval=0.005)
    assert worker.poll() is None, "the worker was no longer waiting for YooKassa's answer"
    os.kill(worker.pid, signal.SIGKILL)
    worker.communicate(timeout=10)
    assert worker.returncode == -signal.SIGKILL


def assert_left_open_by_the_dead_worker(subscription) -> Payment:
    payment = Payment.objects.get(subscription=subscription, kind=PaymentKind.RENEWAL)
    assert payment.status == PaymentStatus.CREATING
    assert payment.provider_payment_id is None
    assert payment.idempotence_key == f"payment-{payment.pk}"
    unchanged = Subscription.objects.get(pk=subscription.pk)
    assert unchanged.current_period_end == subscription.current_period_end
    return payment


# --- the tests -------------------------------------------------------------------------------------


def test_two_renewal_workers_at_once_charge_each_due_subscription_exactly_once(
    jobs, sandbox, plan, as_of, record_property
):
    subscriptions = seed_due_subscriptions(sandbox, plan, 200, as_of=as_of)

    workers = [jobs.start("renewals", as_of), jobs.start("renewals", as_of)]
    reports = [jobs.report(worker) for worker in workers]

    charged = [report["charged"] for report in reports]
    # How the work was shared is not promised (a worker that starts late may find nothing left);
    # here it is usually [100, 100], a page each. Recorded for the junit report, not asserted.
    record_property("charged_per_worker", charged)
    assert sum(charged) == 200
    assert [report["succeeded"] for report in reports] == charged
    assert all(report["declined"] == report["unknown"] == 0 and report["failed"] == [] for report in reports)
    assert sandbox.store.count_payments() == 200
    assert Payment.objects.filter(kind=PaymentKind.RENEWAL).count() == 200
    assert_sandbox_charged_each_once(sandbox, subscriptions)
    assert_renewed_once(subscriptions, plan)
    # Run again, by both: nothing is due any more.
    again = [jobs.start("renewals", as_of), jobs.start("renewals", as_of)]
    assert [jobs.report(worker)["charged"] for worker in again] == [0, 0]
    assert sandbox.store.count_payments() == 200


def test_a_worker_killed_between_the_charge_and_its_commit_is_finished_by_the_janitor(jobs, sandbox, plan, as_of):
    [subscription] = seed_due_subscriptions(sandbox, plan, 1, as_of=as_of)
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=30))

    kill_after_the_charge(sandbox, jobs.start("renewals", as_of))

    payment = assert_left_open_by_the_dead_worker(subscription)
    report = reconciliation.billing_reconcile(now=as_of + JANITOR_DELAY)

    payment.refresh_from_db()
    [charge] = sandbox.store.recent_payments(10)
    assert report.as_dict() == {"looked_at": 1, "settled": 1, "unavailable": 0, "failed": []}
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.provider_payment_id == charge["id"]
    assert_renewed_once([subscription], plan)
    assert sandbox.store.count_payments() == 1
    # The renewal job again: still the one charge.
    assert jobs.run("renewals", as_of)["charged"] == 0
    assert sandbox.store.count_payments() == 1


def test_a_second_worker_after_the_kill_does_not_charge_again_and_the_janitor_settles_it(jobs, sandbox, plan, as_of):
    [subscription] = seed_due_subscriptions(sandbox, plan, 1, as_of=as_of)
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=30))
    kill_after_the_charge(sandbox, jobs.start("renewals", as_of))
    payment = assert_left_open_by_the_dead_worker(subscription)

    # Another worker (a redelivered task, the next scheduled run) finds the open charge and skips it.
    later = jobs.run("renewals", as_of + timedelta(hours=1))

    assert later == {"charged": 0, "succeeded": 0, "declined": 0, "unknown": 0, "failed": []}
    assert sandbox.store.count_payments() == 1
    assert Payment.objects.filter(subscription=subscription).count() == 1
    assert_left_open_by_the_dead_worker(subscription)

    due_for_the_janitor_now()
    janitor = jobs.run("reconcile", as_of + JANITOR_DELAY)

    payment.refresh_from_db()
    assert janitor == {"looked_at": 1, "settled": 1, "unavailable": 0, "failed": []}
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.provider_payment_id == sandbox.store.recent_payments(1)[0]["id"]
    assert_renewed_once([subscription], plan)
    assert sandbox.store.count_payments() == 1


def test_two_janitors_at_once_settle_each_open_renewal_once(jobs, sandbox, plan, as_of, settings):
    subscriptions = seed_due_subscriptions(sandbox, plan, 100, as_of=as_of)
    # YooKassa charges every card but the answers are lost: 90 errors after the fact, 10 too late.
    settings.YOOKASSA_READ_TIMEOUT = 0.3
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create", applied=True, times=90))
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=1.0, times=10))
    with clock.moved_to(as_of):
        charged = renewals.subscription_renew_due()
    assert charged.as_dict() == {"charged": 100, "succeeded": 0, "declined": 0, "unknown": 100, "failed": []}
    assert sandbox.store.count_payments() == 100
    assert Payment.objects.filter(status=PaymentStatus.CREATING, provider_payment_id=None).count() == 100

    due_for_the_janitor_now()
    janitors = [jobs.start("reconcile", as_of + JANITOR_DELAY), jobs.start("reconcile", as_of + JANITOR_DELAY)]
    reports = [jobs.report(janitor) for janitor in janitors]

    assert sum(report["looked_at"] for report in reports) == 100
    assert sum(report["settled"] for report in reports) == 100
    assert all(report["unavailable"] == 0 and report["failed"] == [] for report in reports)
    # Each payment was claimed by one janitor, once.
    assert set(Payment.objects.values_list("status", "check_attempts")) == {(PaymentStatus.SUCCEEDED, 1)}
    assert sandbox.store.count_payments() == 100
    assert_sandbox_charged_each_once(sandbox, subscriptions)
    assert_renewed_once(subscriptions, plan)


def run_while_a_worker_opens_a_renewal(subscription: Subscription, job, *, is_page_query):
    """Run `job` so that its page query (the first SQL `is_page_query(sql, params)` accepts) takes
    its snapshot while another worker holds `subscription` and opens its renewal payment, and reaches
    the row only after that worker committed and let go. Returns what `job` returned."""
    opened, problems, delayed = threading.Event(), [], []

    def worker() -> None:
        try:
            with transaction.atomic():
                locked = (
                    Subscription.objects.select_for_update(of=("self",))
                    .select_related("plan", "payment_method")
                    .get(pk=subscription.pk)
                )
                renewals._new_renewal_payment(locked)
                opened.set()
                time.sleep(0.5)  # commits while the job's page query is under way
        except Exception as error:
            problems.append(error)
        finally:
            opened.set()
            connections.close_all()

    def snapshot_now_lock_later(execute, sql, params, many, context):
        if not delayed and is_page_query(sql, params):
            delayed.append(sql)
            sql = sql.replace(" WHERE ", " WHERE pg_sleep(1.5) IS NOT NULL AND ", 1)
        return execute(sql, params, many, context)

    thread = threading.Thread(target=worker)
    thread.start()
    assert opened.wait(timeout=10)
    with connection.execute_wrapper(snapshot_now_lock_later):
        result = job()
    thread.join(timeout=10)
    assert problems == []
    assert delayed, "the page query was not the one expected"
    return result


def test_a_renewal_committed_while_another_worker_looks_for_due_rows_is_not_opened_again(sandbox, plan, as_of):
    """The two-process race, made certain: worker B's page query takes its snapshot while worker A
    holds a subscription and is opening its renewal, and reaches the row after A committed and let
    go. SKIP LOCKED then hands B a row that is no longer due; B must not open a second payment for it
    (the unique index would refuse it and end B's whole batch with an IntegrityError)."""
    [subscription] = seed_due_subscriptions(sandbox, plan, 1, as_of=as_of)
    with clock.moved_to(as_of):
        report_b = run_while_a_worker_opens_a_renewal(
            subscription, renewals.subscription_renew_due, is_page_query=lambda sql, params: "SKIP LOCKED" in sql
        )

    assert report_b.as_dict() == {"charged": 0, "succeeded": 0, "declined": 0, "unknown": 0, "failed": []}
    payment = Payment.objects.get(subscription=subscription)
    # A, alive after all, charges its payment: one charge, one extension.
    payment = payment_create_at_provider(payment=payment)  # raises if YooKassa did not confirm it
    assert payment.status == PaymentStatus.SUCCEEDED
    assert sandbox.store.count_payments() == 1
    assert_renewed_once([subscription], plan)


def test_expiry_waits_for_a_charge_committed_while_it_looked_for_rows_to_end(sandbox, plan, as_of, settings):
    """The same race for the expiry job: its page query takes its snapshot while a worker holds a
    past-due subscription and opens a charge for it (however that charge came to be wanted: say the
    viewer switched auto-renewal back on just before), and reaches the row after the worker let go.
    The snapshot says no charge is in flight; the expiry must ask again before it ends anything."""
    [subscription] = seed_due_subscriptions(sandbox, plan, 1, as_of=as_of)
    grace_over = subscription.current_period_end + timedelta(days=settings.DUNNING_GRACE_DAYS, hours=1)
    Subscription.objects.filter(pk=subscription.pk).update(
        status=SubscriptionStatus.PAST_DUE, auto_renew=False, renewal_failures=1, past_due_since=as_of
    )

    def grace_rule_page_query(sql, params) -> bool:
        # The grace rule's page query is the one about past-due subscriptions only.
        return "SKIP LOCKED" in sql and "past_due" in params and "active" not in params

    with clock.moved_to(grace_over):
        ended = run_while_a_worker_opens_a_renewal(
            subscription, lifecycle.subscription_expire_due, is_page_query=grace_rule_page_query
        )

    assert ended["grace_period_over"] == 0
    assert Subscription.objects.get(pk=subscription.pk).status == SubscriptionStatus.PAST_DUE
    assert Payment.objects.get(subscription=subscription).status == PaymentStatus.CREATING
