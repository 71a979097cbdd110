"""The recurring jobs are installed as django-q2 schedules, once, and run as thin tasks."""

import io
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django_q.models import Schedule
from django_q.tasks import async_task, result

from billing import tasks
from billing.models import Payment, PaymentKind
from billing.schedules import BILLING_SCHEDULES, schedules_install, schedules_wanted
from deliveries.schedules import DELIVERIES_SCHEDULES
from mail.schedules import MAIL_SCHEDULES
from webhooks.schedules import WEBHOOKS_SCHEDULES

pytestmark = pytest.mark.django_db

EVERY_SCHEDULE = BILLING_SCHEDULES | MAIL_SCHEDULES | WEBHOOKS_SCHEDULES | DELIVERIES_SCHEDULES


def test_schedules_are_installed_once_however_often_the_command_runs():
    call_command("setup_schedules", stdout=io.StringIO())

    call_command("setup_schedules", stdout=io.StringIO())

    schedules = {schedule.name: schedule for schedule in Schedule.objects.all()}
    assert set(schedules) == set(EVERY_SCHEDULE)
    for name, (func, minutes) in EVERY_SCHEDULE.items():
        assert schedules[name].func == func
        assert schedules[name].minutes == minutes
        assert schedules[name].repeats == -1


def test_every_app_named_in_the_settings_brings_its_schedules():
    wanted = schedules_wanted()

    assert wanted == {
        "billing: ": BILLING_SCHEDULES,
        "mail: ": MAIL_SCHEDULES,
        "webhooks: ": WEBHOOKS_SCHEDULES,
        "deliveries: ": DELIVERIES_SCHEDULES,
    }


def test_the_retention_jobs_of_each_app_are_installed():
    call_command("setup_schedules", stdout=io.StringIO())

    installed = dict(Schedule.objects.values_list("name", "func"))
    assert installed["billing: purge old events and client requests"] == "billing.tasks.purge_old_records"
    assert installed["mail: purge old emails"] == "mail.tasks.purge_old_emails"
    assert installed["webhooks: purge old notifications"] == "webhooks.tasks.purge_old_notifications"
    assert installed["webhooks: close interrupted notifications"] == "webhooks.tasks.close_interrupted_notifications"
    assert installed["deliveries: purge old deliveries"] == "deliveries.tasks.purge_old_deliveries"


def test_a_schedule_no_longer_wanted_is_removed():
    for name in ("billing: something retired", "mail: something retired", "webhooks: something retired"):
        Schedule.objects.create(name=name, func="math.floor", schedule_type=Schedule.MINUTES, minutes=5)

    call_command("setup_schedules", stdout=io.StringIO())

    assert not Schedule.objects.filter(name__endswith="something retired").exists()


def test_schedules_of_no_listed_prefix_are_left_alone():
    Schedule.objects.create(name="ops: vacuum", func="math.floor", schedule_type=Schedule.MINUTES, minutes=5)

    call_command("setup_schedules", stdout=io.StringIO())

    assert Schedule.objects.filter(name="ops: vacuum").exists()


def test_a_provider_listing_a_schedule_outside_its_prefix_is_refused(settings):
    settings.SCHEDULE_PROVIDERS = {"mail: ": "billing.schedules.BILLING_SCHEDULES"}

    with pytest.raises(ImproperlyConfigured, match="do not start with 'mail: '"):
        schedules_install()

    assert not Schedule.objects.exists()


@pytest.mark.usefixtures("sandbox")
@pytest.mark.parametrize("func", sorted({func for func, _ in EVERY_SCHEDULE.values()}))
def test_every_scheduled_task_runs_as_a_task(func):
    task_id = async_task(func)

    assert result(task_id) is not None


def test_run_billing_jobs_runs_as_of_a_moment(capsys, sandbox):
    call_command("run_billing_jobs", "--as-of", "2030-01-01T10:00", "--job", "renewals", "--job", "expiry")

    output = capsys.readouterr().out
    assert "billing clock: 2030-01-01T10:00" in output
    assert 'renewals: {"charged": 0' in output
    assert "expiry: {" in output


@pytest.fixture
def due_for_renewal(sandbox, active):
    """A moment the active subscription is due at, four periods late."""
    return active.current_period_end + timedelta(days=120)


@pytest.mark.parametrize(
    ("sandbox_on", "real_credentials"),
    [(False, True), (True, True), (False, False)],
    ids=["real-yookassa", "sandbox-flag-with-real-credentials", "sandbox-off"],
)
def test_run_billing_jobs_refuses_as_of_unless_the_sandbox_is_in_use(
    capsys, settings, sandbox, due_for_renewal, sandbox_on, real_credentials
):
    settings.YOOKASSA_SANDBOX = sandbox_on
    settings.YOOKASSA_HAS_REAL_CREDENTIALS = real_credentials

    with pytest.raises(CommandError, match="only runs against the YooKassa sandbox"):
        call_command("run_billing_jobs", "--as-of", due_for_renewal.isoformat(), "--job", "renewals")

    assert "billing clock" not in capsys.readouterr().out
    assert not Payment.objects.filter(kind=PaymentKind.RENEWAL).exists()
    assert sandbox.store.count_payments() == 1


def test_run_billing_jobs_without_as_of_runs_whatever_yookassa_is_used(capsys, settings, sandbox):
    settings.YOOKASSA_SANDBOX = False
    settings.YOOKASSA_HAS_REAL_CREDENTIALS = True

    call_command("run_billing_jobs", "--job", "expiry")

    assert "expiry: {" in capsys.readouterr().out


def test_run_billing_jobs_as_of_far_ahead_charges_each_subscription_once(capsys, sandbox, due_for_renewal):
    call_command("run_billing_jobs", "--as-of", due_for_renewal.isoformat(), "--job", "renewals")

    assert 'renewals: {"charged": 1, "succeeded": 1,' in capsys.readouterr().out
    assert Payment.objects.filter(kind=PaymentKind.RENEWAL).count() == 1
    assert sandbox.store.count_payments() == 2


def test_batch_tasks_stop_taking_rows_a_third_of_the_way_to_their_time_limit(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60}

    assert tasks.time_budget() == 20
