"""django-q2 runs tasks (inline in tests, in a real qcluster process in production) and mail goes out."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection
from django_q.models import Task
from django_q.tasks import async_task, result

ROOT = Path(__file__).resolve().parents[2]


def test_tasks_run_inline_in_the_test_settings(db):
    task_id = async_task("math.hypot", 3, 4)

    assert result(task_id) == 5.0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_qcluster_process_runs_a_task_from_the_orm_broker():
    db = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "Q_WORKERS": "1",
    }
    enqueue = "from django_q.tasks import async_task; print(async_task('math.hypot', 6, 8))"
    task_id = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {enqueue}"],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], env=environment, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not Task.objects.filter(id=task_id).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        cluster.terminate()
        cluster.wait(timeout=30)

    task = Task.objects.get(id=task_id)
    assert task.success is True
    assert task.result == 10.0


def test_mail_goes_to_the_test_outbox():
    mail.send_mail("Subject", "Body", None, ["viewer@example.com"])

    assert len(mail.outbox) == 1
    assert mail.outbox[0].from_email == "Cinema <billing@cinema.example>"
