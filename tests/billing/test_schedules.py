"""The recurring jobs are installed as django-q2 schedules, once, and run as thin tasks."""

import io

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django_q.models import Schedule
from django_q.tasks import async_task, result

from billing.schedules import BILLING_SCHEDULES, schedules_install, schedules_wanted
from mail.schedules import MAIL_SCHEDULES

pytestmark = pytest.mark.django_db

EVERY_SCHEDULE = BILLING_SCHEDULES | MAIL_SCHEDULES


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

    assert wanted == {"billing: ": BILLING_SCHEDULES, "mail: ": MAIL_SCHEDULES}


def test_a_schedule_no_longer_wanted_is_removed():
    for name in ("billing: something retired", "mail: something retired"):
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
