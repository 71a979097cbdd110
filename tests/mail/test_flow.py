"""A viewer's life with the cinema, and the emails it brings: through billing, the sandbox and mail's tasks."""

import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django_q.tasks import async_task, result
from strawberry.relay import to_base64

from billing import clock, services
from billing.services import CancelMode, renewals
from mail.models import Email, EmailStatus
from tests.helpers import GraphQLClient, eventually, pay_on_page, subscribe_and_pay


def run_mail_tasks() -> dict:
    """The scheduled delivery, run as django-q2 runs it (inline in the test settings)."""
    return result(async_task("mail.tasks.deliver_emails"))


@pytest.mark.django_db
@pytest.mark.usefixtures("sandbox")
def test_subscribe_renew_and_cancel_with_a_refund_send_one_email_each(viewer, plan):
    subscription = subscribe_and_pay(viewer, plan)
    renewed_until = plan.period.end_after(subscription.current_period_end)
    with clock.moved_to(subscription.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
    services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=subscription.pk, mode=CancelMode.NOW_WITH_REFUND, idempotency_key=None
    )

    first = run_mail_tasks()
    again = run_mail_tasks()

    assert [(message.to, message.subject) for message in mail.outbox] == [
        ([viewer.email], "Your Basic subscription is active"),
        ([viewer.email], f"Your Basic subscription is renewed until {_day(renewed_until)}"),
        ([viewer.email], "Your Basic subscription is canceled and 299.00 RUB refunded"),
    ]
    assert first == {"composed": 4, "sent": 3, "retrying": 0, "failed": 0}
    assert again == {"composed": 0, "sent": 0, "retrying": 0, "failed": 0}
    assert sorted(Email.objects.values_list("template", "status")) == [
        ("refund_succeeded", EmailStatus.SKIPPED),
        ("subscription_activated", EmailStatus.SENT),
        ("subscription_canceled", EmailStatus.SENT),
        ("subscription_renewed", EmailStatus.SENT),
    ]


def _day(moment) -> str:
    return f"{moment.day} {moment:%B %Y}"


SUBSCRIBE = """
mutation Subscribe($input: SubscribeInput!) {
  subscribe(input: $input) { payment { confirmationUrl } errors { code } }
}
"""


@pytest.mark.django_db(transaction=True)
def test_the_activation_email_goes_out_when_yookassas_notification_is_applied(live_server, sandbox, token, plan):
    """No task is run by hand: the webhook's commit starts the delivery."""
    sandbox.config.notification_url = live_server.url + "/webhooks/yookassa/"
    frontend = GraphQLClient(live_server.url)
    answer = frontend.execute(
        SUBSCRIBE,
        {
            "input": {
                "planId": to_base64("Plan", plan.pk),
                "returnUrl": "https://cinema.example/return",
                "idempotencyKey": str(uuid.uuid4()),
            }
        },
        token=token,
    )["data"]["subscribe"]
    assert answer["errors"] == []

    pay_on_page(answer["payment"]["confirmationUrl"], "5555555555554444")

    [sent] = eventually(lambda: list(mail.outbox), timeout=5)
    assert sent.to == ["viewer@example.com"]
    assert sent.subject == "Your Basic subscription is active"
    assert "299.00 RUB" in sent.body
