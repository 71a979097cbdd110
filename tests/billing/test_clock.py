"""Billing's one clock: domain time can be moved for the code inside `moved_to`, real time never,
and a moved clock stays in the context that moved it."""

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing import clock

AS_OF = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
# Reads of the time that take no moment from the caller; billing asks the clock instead.
TIME_READ = re.compile(r"timezone\.now\(|datetime\.now\(|datetime\.utcnow\(|time\.time\(|date\.today\(")


def test_unmoved_domain_time_is_real_time():
    # given no moved_to, when both are read, then they agree to the clock's tick
    assert abs(clock.domain_now() - clock.real_now()) < timedelta(seconds=1)


def test_moved_to_moves_domain_time_and_not_real_time():
    # when
    with clock.moved_to(AS_OF):
        domain, real = clock.domain_now(), clock.real_now()

    # then
    assert AS_OF <= domain < AS_OF + timedelta(seconds=1)
    assert abs(real - timezone.now()) < timedelta(seconds=1)


def test_the_moved_clock_goes_on_ticking():
    with clock.moved_to(AS_OF):
        first = clock.domain_now()
        second = clock.domain_now()

    assert AS_OF <= first <= second


def test_leaving_moved_to_restores_the_clock_even_after_an_error():
    # given
    with pytest.raises(RuntimeError), clock.moved_to(AS_OF):
        raise RuntimeError("a job failed")

    # then
    assert abs(clock.domain_now() - clock.real_now()) < timedelta(seconds=1)


def test_nested_moves_unwind_one_at_a_time():
    later = AS_OF + timedelta(days=30)

    with clock.moved_to(AS_OF):
        with clock.moved_to(later):
            assert clock.domain_now() >= later
        back = clock.domain_now()

    assert AS_OF <= back < later


def test_a_thread_started_inside_moved_to_keeps_real_time():
    """What a long-running worker's other threads see while one of them runs --as-of: real time."""
    seen = []
    # when
    with clock.moved_to(AS_OF):
        thread = threading.Thread(target=lambda: seen.append(clock.domain_now()))
        thread.start()
        thread.join()

    # then
    assert abs(seen[0] - clock.real_now()) < timedelta(seconds=5)


@pytest.mark.django_db
def test_run_billing_jobs_as_of_moves_the_clock_only_while_it_runs(capsys, sandbox):
    # when
    call_command("run_billing_jobs", "--as-of", AS_OF.isoformat(), "--job", "expiry")

    # then
    assert f"billing clock: {AS_OF:%Y-%m-%dT%H:%M}" in capsys.readouterr().out
    assert abs(clock.domain_now() - clock.real_now()) < timedelta(seconds=1)


@pytest.mark.django_db
def test_run_billing_jobs_without_as_of_runs_on_real_time(capsys, sandbox):
    call_command("run_billing_jobs", "--job", "expiry")

    printed = capsys.readouterr().out.split("billing clock: ", 1)[1].split("\n", 1)[0]
    assert abs(datetime.fromisoformat(printed) - clock.real_now()) < timedelta(seconds=5)


def test_only_the_clock_reads_the_time_in_billing():
    billing = Path(clock.__file__).parent
    reads = [
        f"{path.relative_to(billing)}:{number}"
        for path in billing.rglob("*.py")
        if path.name != "clock.py" and "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if TIME_READ.search(line)
    ]

    assert reads == []
