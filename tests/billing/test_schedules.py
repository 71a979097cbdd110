"""The recurring jobs are installed as django-q2 schedules, once, and run as thin tasks."""

import io

import pytest
from django.core.management import call_command
from django_q.models import Schedule
from django_q.tasks import async_task, result

from billing.schedules import BILLING_SCHEDULES

pytestmark = pytest.mark.django_db


def test_schedules_are_installed_once_however_often_the_command_runs():
    call_command("setup_billing_schedules", stdout=io.StringIO())

    call_command("setup_billing_schedules", stdout=io.StringIO())

    schedules = {schedule.name: schedule for schedule in Schedule.objects.all()}
    assert set(schedules) == set(BILLING_SCHEDULES)
    for name, (func, minutes) in BILLING_SCHEDULES.items():
        assert schedules[name].func == func
        assert schedules[name].minutes == minutes
        assert schedules[name].repeats == -1


def test_a_schedule_no_longer_wanted_is_removed():
    Schedule.objects.create(
        name="billing: something retired", func="math.floor", schedule_type=Schedule.MINUTES, minutes=5
    )

    call_command("setup_billing_schedules", stdout=io.StringIO())

    assert not Schedule.objects.filter(name="billing: something retired").exists()


@pytest.mark.usefixtures("sandbox")
@pytest.mark.parametrize("func", sorted({func for func, _ in BILLING_SCHEDULES.values()}))
def test_every_scheduled_task_runs_as_a_task(func):
    task_id = async_task(func)

    assert result(task_id) is not None


def test_run_billing_jobs_runs_as_of_a_moment(capsys, sandbox):
    call_command("run_billing_jobs", "--as-of", "2030-01-01T10:00", "--job", "renewals", "--job", "expiry")

    output = capsys.readouterr().out
    assert "billing clock: 2030-01-01T10:00" in output
    assert 'renewals: {"charged": 0' in output
    assert "expiry: {" in output
