"""From billing's outbox to Email rows: once per event, whoever dispatches and whenever it commits."""

import logging
import os
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.utils import timezone
from django_q.models import OrmQ, Task

from billing import services
from billing.events import BillingEventType, PaymentCreated, SubscriptionRenewalUpcoming
from billing.models import BillingEvent, PaymentMethod, Subscription, SubscriptionStatus
from billing.services.events import event_record
from mail import receivers
from mail.models import Email, EmailStatus
from mail.receivers import DELIVERY_DEBOUNCE_KEY
from mail.services import email_create_for_events
from tests.helpers import eventually, subscribe_and_pay
from tests.mail.conftest import deliver


def upcoming_notice(subscription: Subscription, amount: str = "299.00") -> BillingEvent:
    """The renewal notice as billing records it."""
    return event_record(
        subscription,
        BillingEventType.SUBSCRIPTION_RENEWAL_UPCOMING,
        SubscriptionRenewalUpcoming(charge_on=subscription.current_period_end, amount=Decimal(amount), currency="RUB"),
    )


def notice_fields(subscription: Subscription) -> dict:
    """The same notice as fields of a row, for a test that picks the row's id."""
    return {
        "type": "subscription.renewal_upcoming",
        "viewer_id": subscription.viewer_id,
        "subscription": subscription,
        "payload": {"charge_on": subscription.current_period_end.isoformat(), "amount": "299.00", "currency": "RUB"},
    }


@pytest.fixture
def live(plan, db) -> Subscription:
    """An active subscription, made directly (no payment, no event of its own)."""
    start = timezone.now()
    return Subscription.objects.create(
        viewer_id="6f1c1b5e-3f47-4d43-9b43-1f3a86b5c001",
        viewer_email="live@example.com",
        plan=plan,
        status=SubscriptionStatus.ACTIVE,
        current_period_start=start,
        current_period_end=start + timedelta(days=30),
    )


@pytest.mark.django_db
def test_dispatching_twice_makes_one_email_per_event(live):
    events = [upcoming_notice(live, amount) for amount in ("299.00", "349.00", "399.00")]

    first = email_create_for_events()
    second = email_create_for_events()

    assert (first, second) == (3, 0)
    assert sorted(Email.objects.values_list("event_id", flat=True)) == [event.pk for event in events]
    assert set(Email.objects.values_list("status", flat=True)) == {EmailStatus.READY}


@pytest.mark.django_db
def test_pages_of_events_are_all_dispatched(live):
    events = [upcoming_notice(live) for _ in range(7)]

    email_create_for_events(page_size=3)

    assert Email.objects.count() == len(events)


@pytest.mark.django_db
def test_an_event_whose_lower_id_shows_up_after_higher_ones_were_mailed_still_gets_its_email(live):
    """What a late commit looks like to the dispatcher: a "last id seen" cursor would skip it."""
    later = BillingEvent.objects.create(id=10_000, **notice_fields(live))
    email_create_for_events()

    late = BillingEvent.objects.create(id=9_999, **notice_fields(live))
    email_create_for_events()

    assert sorted(Email.objects.values_list("event_id", flat=True)) == [late.pk, later.pk]


@pytest.mark.django_db
def test_events_older_than_the_lookback_window_are_left_alone(live, settings):
    old = upcoming_notice(live)
    BillingEvent.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(hours=settings.MAIL_EVENT_LOOKBACK_HOURS, minutes=1)
    )
    recent = upcoming_notice(live)

    email_create_for_events()

    assert list(Email.objects.values_list("event_id", flat=True)) == [recent.pk]


@pytest.mark.django_db
def test_an_event_that_cannot_be_composed_is_logged_and_holds_up_no_other(live, caplog):
    # A row no composer can read (its date is not a date), as a bug or a hand edit could leave it.
    broken = BillingEvent.objects.create(
        **{**notice_fields(live), "payload": {"charge_on": "soon", "amount": "299.00", "currency": "RUB"}}
    )
    fine = upcoming_notice(live)

    with caplog.at_level(logging.ERROR, logger="mail.services"):
        email_create_for_events()
        email_create_for_events()

    assert list(Email.objects.values_list("event_id", flat=True)) == [fine.pk]
    failures = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(failures) == 2
    assert f"billing event {broken.pk} (subscription.renewal_upcoming)" in failures[0].getMessage()


@pytest.mark.django_db
def test_a_billing_change_delivers_its_email_as_soon_as_it_commits(
    viewer, sandbox, plan, django_capture_on_commit_callbacks
):
    subscription = subscribe_and_pay(viewer, plan)
    deliver()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.subscription_set_auto_renew(viewer_id=viewer.id, subscription_id=subscription.pk, enabled=False)

    [sent] = mail.outbox
    assert sent.subject == "Auto-renewal of your Basic subscription is off"
    assert Email.objects.get(event__type="subscription.auto_renew_changed").status == EmailStatus.SENT


@pytest.mark.django_db
def test_a_burst_of_events_enqueues_one_delivery(live, django_capture_on_commit_callbacks, monkeypatch):
    # However slow this machine, the third event comes within the debounce.
    monkeypatch.setattr(receivers, "DELIVERY_DEBOUNCE_SECONDS", 60)

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        upcoming_notice(live)
        upcoming_notice(live)
    with django_capture_on_commit_callbacks(execute=True):
        upcoming_notice(live)

    deliveries = Task.objects.filter(func="mail.tasks.deliver_emails")
    assert deliveries.count() == 1
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_events_billing_records_for_nobody_to_read_enqueue_nothing(live, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        event_record(live, BillingEventType.PAYMENT_CREATED, PaymentCreated(amount=Decimal("299.00"), currency="RUB"))

    assert not Task.objects.filter(func="mail.tasks.deliver_emails").exists()
    assert not cache.get(DELIVERY_DEBOUNCE_KEY)


# --- on PostgreSQL, with real concurrent transactions ------------------------------------------------


@pytest.fixture
def no_prompt_delivery():
    """Committed outside a test transaction, each event would be delivered at once (tasks run
    inline here); these tests dispatch themselves. As if a delivery were already enqueued:"""
    cache.set(DELIVERY_DEBOUNCE_KEY, True, timeout=600)
    yield
    cache.delete(DELIVERY_DEBOUNCE_KEY)


def _in_thread(target, errors: list) -> threading.Thread:
    """`target` on its own connection; what it raises goes to `errors`."""

    def run():
        try:
            target()
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _sessions_waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_prompt_delivery")
def test_a_dispatcher_racing_one_that_has_not_committed_yet_makes_no_duplicate(live):
    """Both see the event without an email; the second's insert waits on the first's unique key
    and, once the first commits, inserts nothing."""
    event = upcoming_notice(live)
    first_inserted, release_first = threading.Event(), threading.Event()
    results, errors = {}, []

    def first():
        with transaction.atomic():
            results["first"] = email_create_for_events()
            first_inserted.set()
            release_first.wait(timeout=10)

    def second():
        results["second"] = email_create_for_events()

    threads = [_in_thread(first, errors)]
    assert first_inserted.wait(timeout=10)
    threads.append(_in_thread(second, errors))
    eventually(lambda: _sessions_waiting_for_a_lock() >= 1)
    release_first.set()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    assert results == {"first": 1, "second": 1}
    assert Email.objects.filter(event=event).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_prompt_delivery")
def test_eight_dispatchers_at_once_make_one_email_per_event(live):
    events = [upcoming_notice(live) for _ in range(40)]
    barrier, errors = threading.Barrier(8), []

    def dispatch():
        barrier.wait(timeout=10)
        email_create_for_events(page_size=7)

    threads = [_in_thread(dispatch, errors) for _ in range(8)]
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(Email.objects.values_list("event_id", flat=True)) == [event.pk for event in events]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_prompt_delivery")
def test_an_event_committed_after_later_ones_were_mailed_still_gets_its_email(live):
    recorded, release = threading.Event(), threading.Event()
    late, errors = {}, []

    def slow_transaction():
        with transaction.atomic():
            late["event"] = upcoming_notice(live, "111.00")
            recorded.set()
            release.wait(timeout=10)

    thread = _in_thread(slow_transaction, errors)
    assert recorded.wait(timeout=10)
    later = upcoming_notice(live, "222.00")
    email_create_for_events()
    mailed_before_the_commit = list(Email.objects.values_list("event_id", flat=True))
    release.set()
    thread.join(timeout=10)

    email_create_for_events()

    assert errors == []
    assert late["event"].pk < later.pk
    assert mailed_before_the_commit == [later.pk]
    assert sorted(Email.objects.values_list("event_id", flat=True)) == [late["event"].pk, later.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_prompt_deliveries_enqueued_in_the_middle_of_a_billing_job_leave_its_connection_open(plans):
    """django-q2's ORM broker closes the caller's connection when it enqueues in autocommit mode:
    enqueued from a job that is still reading rows (the renewal notices iterate over a cursor),
    that would kill the job. Run as the worker runs it, in a process of its own without inline tasks."""
    period_end = timezone.now() + timedelta(days=1)
    for number in range(3):
        viewer_id = uuid.uuid4()
        card = PaymentMethod.objects.create(
            viewer_id=viewer_id, provider_method_id=f"card-{number}", type="bank_card", title="Bank card *4444"
        )
        Subscription.objects.create(
            viewer_id=viewer_id,
            viewer_email="viewer@example.com",
            payment_method=card,
            plan=plans["basic-monthly"],
            status=SubscriptionStatus.ACTIVE,
            auto_renew=True,
            current_period_start=period_end - timedelta(days=30),
            current_period_end=period_end,
        )
    db = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    job = "from billing.services import lifecycle; print(lifecycle.subscription_record_renewal_notices())"

    completed = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {job}"],
        env=environment,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split()[-1] == "3"
    assert Task.objects.filter(func="mail.tasks.deliver_emails").count() + OrmQ.objects.count() >= 1
