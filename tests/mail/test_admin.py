"""Operators read the emails; FAILED ones can be sent again now."""

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.utils.timezone import now

from mail.models import Email, EmailStatus
from tests.mail.conftest import ready_emails

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/mail/email/"


@pytest.fixture
def failed(plan) -> Email:
    """A failed email, and a sent one beside it."""
    email, other = ready_emails(plan, count=2)
    Email.objects.filter(pk=email.pk).update(
        status=EmailStatus.FAILED, attempts=5, next_attempt_at=None, last_error="ConnectionError: Mailgun is down"
    )
    Email.objects.filter(pk=other.pk).update(status=EmailStatus.SENT, attempts=1, next_attempt_at=None, sent_at=now())
    email.refresh_from_db()
    return email


def test_the_list_filters_by_status_and_template_and_finds_by_recipient_or_viewer(admin_client, failed):
    by_status = admin_client.get(CHANGELIST, {"status__exact": "failed"})
    by_template = admin_client.get(CHANGELIST, {"template__exact": "renewal_upcoming"})
    by_other_template = admin_client.get(CHANGELIST, {"template__exact": "subscription_renewed"})
    by_recipient = admin_client.get(CHANGELIST, {"q": "viewer0@example.com"})
    by_viewer = admin_client.get(CHANGELIST, {"q": str(failed.event.viewer_id)})
    detail = admin_client.get(f"{CHANGELIST}{failed.pk}/change/")

    assert [page.status_code for page in (by_status, by_template, by_recipient, by_viewer, detail)] == [200] * 5
    assert list(by_status.context["cl"].result_list) == [failed]
    assert by_template.context["cl"].result_count == 2
    assert by_other_template.context["cl"].result_count == 0
    assert list(by_recipient.context["cl"].result_list) == [failed]
    assert list(by_viewer.context["cl"].result_list) == [failed]
    assert "ConnectionError: Mailgun is down" in detail.text


def test_emails_cannot_be_added_changed_or_deleted(admin_client, failed):
    add = admin_client.get(f"{CHANGELIST}add/")
    change = admin_client.post(f"{CHANGELIST}{failed.pk}/change/", {"recipient": "someone@example.com"})
    delete = admin_client.post(f"{CHANGELIST}{failed.pk}/delete/", {"post": "yes"})

    failed.refresh_from_db()
    assert add.status_code == 403
    assert change.status_code == 403
    assert delete.status_code == 403
    assert failed.recipient == "viewer0@example.com"


def test_send_again_now_sends_the_failed_ones_at_once_and_leaves_the_others(
    admin_client, failed, django_capture_on_commit_callbacks
):
    other = Email.objects.exclude(pk=failed.pk).get()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST, {"action": "send_again_now", "_selected_action": [failed.pk, other.pk]}, follow=True
        )

    failed.refresh_from_db()
    other.refresh_from_db()
    assert response.status_code == 200
    assert "1 email(s) will be sent again now." in response.text
    assert "1 email(s) were not failed" in response.text
    assert (failed.status, failed.attempts) == (EmailStatus.SENT, 1)
    assert (other.status, other.attempts) == (EmailStatus.SENT, 1)
    assert [message.to for message in mail.outbox] == [["viewer0@example.com"]]


def test_send_again_needs_the_permission_to_change_emails(client, django_user_model, failed):
    viewer_of_emails = django_user_model.objects.create_user("reader", password="x", is_staff=True)
    viewer_of_emails.user_permissions.add(Permission.objects.get(codename="view_email"))
    client.force_login(viewer_of_emails)

    response = client.post(CHANGELIST, {"action": "send_again_now", "_selected_action": [failed.pk]})

    failed.refresh_from_db()
    assert response.status_code == 200
    assert failed.status == EmailStatus.FAILED
