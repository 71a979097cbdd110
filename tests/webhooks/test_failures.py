"""Every failure of a trusted notification is on its row and asks YooKassa to try again: a
database outage is DEFERRED with 503, anything else FAILED with 500. The database is a process
boundary: it fails here through Django's execute wrapper, as a lost connection would."""

import json
import logging
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import IntegrityError, InterfaceError, OperationalError, connection
from django.utils import timezone

from billing.models import PaymentStatus
from tests.webhooks.test_yookassa_webhook import _api_object, _billing_state, _notification, _paid, _post
from webhooks import services
from webhooks.models import NotificationOutcome, YooKassaNotification
from webhooks.retention import INTERRUPTED_DETAIL, notification_close_interrupted

NOTIFICATIONS = YooKassaNotification._meta.db_table
PAYMENTS = "billing_payment"


@contextmanager
def database_fails(error: Exception, *, when):
    """Every statement `when(sql)` picks raises `error` instead of reaching the database."""

    def execute(run, sql, params, many, context):
        if when(sql):
            raise error
        return run(sql, params, many, context)

    with connection.execute_wrapper(execute):
        yield


def _touches(table: str, verb: str = ""):
    return lambda sql: table in sql and sql.lstrip().upper().startswith(verb)


def _succeeded_notification(sandbox, viewer, plan):
    payment = _paid(viewer, plan)
    return payment, json.dumps(_notification("payment.succeeded", _api_object(sandbox, payment))).encode()


@pytest.mark.django_db
def test_a_database_outage_while_processing_answers_503_and_the_row_says_why(sandbox, viewer, plan):
    payment, body = _succeeded_notification(sandbox, viewer, plan)
    before = _billing_state(payment)
    lost = OperationalError("server closed the connection unexpectedly")

    with database_fails(lost, when=_touches(PAYMENTS)):
        response = _post(body)

    assert response.status_code == 503
    assert _billing_state(payment) == before
    notification = YooKassaNotification.objects.get()
    assert notification.outcome == NotificationOutcome.DEFERRED
    assert notification.detail == "Database unavailable: OperationalError: server closed the connection unexpectedly"
    assert notification.event == "payment.succeeded"
    assert notification.object_id == payment.provider_payment_id
    assert notification.raw_body == body.decode()
    assert notification.processed_at is not None


@pytest.mark.django_db
def test_a_lost_connection_is_an_outage_too(sandbox, viewer, plan):
    _payment, body = _succeeded_notification(sandbox, viewer, plan)

    with database_fails(InterfaceError("connection already closed"), when=_touches(PAYMENTS)):
        response = _post(body)

    assert response.status_code == 503
    notification = YooKassaNotification.objects.get()
    assert notification.outcome == NotificationOutcome.DEFERRED
    assert notification.detail == "Database unavailable: InterfaceError: connection already closed"


@pytest.mark.django_db
def test_when_the_database_is_back_the_redelivery_is_processed(sandbox, viewer, plan):
    payment, body = _succeeded_notification(sandbox, viewer, plan)
    with database_fails(OperationalError("the database system is shutting down"), when=_touches(PAYMENTS)):
        assert _post(body).status_code == 503

    response = _post(body)

    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    deferred, processed = YooKassaNotification.objects.order_by("id")
    assert deferred.outcome == NotificationOutcome.DEFERRED
    assert processed.outcome == NotificationOutcome.PROCESSED


# Outside a transaction, as in production: a failed write inside one would end it.
@pytest.mark.django_db(transaction=True)
def test_when_the_first_insert_fails_the_answer_is_503_and_nothing_is_half_written(sandbox, viewer, plan, caplog):
    payment, body = _succeeded_notification(sandbox, viewer, plan)
    before = _billing_state(payment)

    with database_fails(OperationalError("could not connect to server"), when=_touches(NOTIFICATIONS, "INSERT")):
        response = _post(body)

    assert response.status_code == 503
    assert not YooKassaNotification.objects.exists()
    assert _billing_state(payment) == before
    assert "the database is unavailable: OperationalError: could not connect to server" in caplog.text


@pytest.mark.django_db
def test_an_untrusted_notification_during_an_outage_is_answered_503(sandbox):
    with database_fails(OperationalError("could not connect to server"), when=lambda sql: True):
        response = _post(b"{}", remote_addr="203.0.113.7")

    assert response.status_code == 503


# Outside a transaction, as in production: a failed write inside one would end it.
@pytest.mark.django_db(transaction=True)
def test_when_the_database_stays_down_the_row_stays_received_until_the_janitor_closes_it(sandbox, viewer, plan):
    _payment, body = _succeeded_notification(sandbox, viewer, plan)
    down = OperationalError("server closed the connection unexpectedly")

    def still_down(sql: str) -> bool:
        return _touches(PAYMENTS)(sql) or _touches(NOTIFICATIONS, "UPDATE")(sql)

    with database_fails(down, when=still_down):
        response = _post(body)

    assert response.status_code == 503
    interrupted = YooKassaNotification.objects.get()
    assert interrupted.outcome == NotificationOutcome.RECEIVED
    in_flight = YooKassaNotification.objects.create(trusted_source=True, raw_body="{}")
    # ... and one that came ten minutes later, still being processed
    YooKassaNotification.objects.filter(pk=in_flight.pk).update(
        received_at=interrupted.received_at + timedelta(minutes=10)
    )

    closed_early = notification_close_interrupted(now=timezone.now() + timedelta(minutes=14))
    closed = notification_close_interrupted(now=interrupted.received_at + timedelta(minutes=15, seconds=1))

    assert closed_early == 0
    assert closed == 1
    interrupted.refresh_from_db()
    in_flight.refresh_from_db()
    assert interrupted.outcome == NotificationOutcome.DEFERRED
    assert interrupted.detail == INTERRUPTED_DETAIL
    assert interrupted.processed_at is not None
    assert in_flight.outcome == NotificationOutcome.RECEIVED


@pytest.mark.django_db
def test_an_unexpected_error_in_a_handler_is_recorded_failed_and_answered_500(
    sandbox, viewer, plan, caplog, monkeypatch
):
    payment, body = _succeeded_notification(sandbox, viewer, plan)
    before = _billing_state(payment)

    def broken_handler(notification):
        raise RuntimeError("the handler broke")

    monkeypatch.setitem(services._HANDLERS, "payment.succeeded", broken_handler)

    with caplog.at_level(logging.ERROR, logger="webhooks.services"):
        response = _post(body)

    assert response.status_code == 500
    assert _billing_state(payment) == before
    notification = YooKassaNotification.objects.get()
    assert notification.outcome == NotificationOutcome.FAILED
    assert notification.detail == "RuntimeError: the handler broke"
    assert notification.event == "payment.succeeded"
    assert notification.processed_at is not None
    [record] = [record for record in caplog.records if record.name == "webhooks.services"]
    assert record.getMessage() == f"Notification {notification.id} failed"
    assert record.exc_info is not None


@pytest.mark.django_db
def test_a_database_error_that_is_a_bug_is_failed_with_500_not_an_outage(sandbox, viewer, plan):
    _payment, body = _succeeded_notification(sandbox, viewer, plan)

    with database_fails(IntegrityError("violates check constraint"), when=_touches(PAYMENTS, "SELECT")):
        response = _post(body)

    assert response.status_code == 500
    notification = YooKassaNotification.objects.get()
    assert notification.outcome == NotificationOutcome.FAILED
    assert notification.detail == "IntegrityError: violates check constraint"


@pytest.mark.django_db
def test_a_long_error_is_recorded_cut_to_fit(sandbox, viewer, plan, monkeypatch):
    _payment, body = _succeeded_notification(sandbox, viewer, plan)

    def broken_handler(notification):
        raise ValueError("x" * 10_000)

    monkeypatch.setitem(services._HANDLERS, "payment.succeeded", broken_handler)

    response = _post(body)

    assert response.status_code == 500
    assert YooKassaNotification.objects.get().detail == ("ValueError: " + "x" * 10_000)[:2000]
