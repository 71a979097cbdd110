"""What each billing event tells the viewer, driven through billing's own services and the sandbox."""

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from billing import clock, services
from billing.errors import RefundCanceled
from billing.events import BillingEventType, SubscriptionRenewalUpcoming
from billing.models import BillingEvent, SubscriptionStatus
from billing.money import Money
from billing.services import CancelMode, lifecycle, renewals
from billing.services.events import event_record
from mail.models import Email, EmailStatus
from sandbox.emulator import RefundOutcome
from tests.helpers import DECLINE_CARD, subscribe_and_pay
from tests.mail.conftest import deliver, email_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


def day(moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo(settings.TIME_ZONE))
    return f"{local.day} {local:%B %Y}"


def when(moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo(settings.TIME_ZONE))
    return f"{local.day} {local:%B %Y at %H:%M} {local.tzname()}"


def html_of(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def cancel(viewer, subscription, mode=CancelMode.NOW_WITH_REFUND):
    return services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=subscription.pk, mode=mode, idempotency_key=None
    )


def renew_declined(subscription, sandbox, reason="insufficient_funds"):
    sandbox.emulator.set_payment_method_decline(subscription.payment_method.provider_method_id, reason)
    with clock.moved_to(subscription.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
    subscription.refresh_from_db()


def test_activation_tells_the_amount_paid_and_the_period(viewer, plan):
    subscription = subscribe_and_pay(viewer, plan)

    [sent] = deliver()

    assert sent.to == [viewer.email]
    assert sent.from_email == settings.DEFAULT_FROM_EMAIL
    assert sent.subject == "Your Basic subscription is active"
    for body in (sent.body, html_of(sent)):
        assert "299.00 RUB" in body
        assert when(subscription.current_period_start) in body
        assert when(subscription.current_period_end) in body
    assert "It renews automatically" in sent.body
    assert "Bank card *4444" in sent.body
    assert email_of("subscription.activated").status == EmailStatus.SENT


def test_dates_are_shown_in_the_configured_time_zone(viewer, plan, settings):
    settings.TIME_ZONE = "Europe/Moscow"
    subscription = subscribe_and_pay(viewer, plan)

    [sent] = deliver()

    moscow = subscription.current_period_end.astimezone(ZoneInfo("Europe/Moscow"))
    assert f"{moscow:%H:%M} MSK" in sent.body
    assert when(subscription.current_period_end).endswith("MSK")
    assert when(subscription.current_period_end) in sent.body


def test_a_declined_first_payment_tells_why_and_that_nothing_was_taken(viewer, plan):
    subscribe_and_pay(viewer, plan, card=DECLINE_CARD)

    [sent] = deliver()

    assert sent.to == [viewer.email]
    assert sent.subject == "Your payment for Basic didn't go through"
    assert "299.00 RUB" in sent.body
    assert "there was not enough money on the card" in sent.body
    assert "No money was taken" in sent.body


def test_an_upcoming_renewal_tells_the_amount_and_the_date_and_each_notice_is_its_own_email(active, plan):
    deliver()
    end = active.current_period_end
    with clock.moved_to(end - timedelta(days=2)):
        lifecycle.subscription_record_renewal_notices()

    [notice] = deliver()
    # Billing records the notice again when the price changes: that is another email.
    event_record(
        active,
        BillingEventType.SUBSCRIPTION_RENEWAL_UPCOMING,
        SubscriptionRenewalUpcoming(charge_on=end, amount=Decimal("349.00"), currency="RUB"),
    )
    [again] = deliver()

    assert notice.subject == f"Your Basic subscription renews on {day(end)}"
    assert "299.00 RUB" in notice.body
    assert "Bank card *4444" in notice.body
    assert day(end) in html_of(notice)
    assert again.subject == notice.subject
    assert "349.00 RUB" in again.body


def test_a_renewal_tells_the_amount_and_the_new_period(active, plan):
    deliver()
    old_end = active.current_period_end
    plan.price = "349.00"
    plan.save()

    with clock.moved_to(old_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
    [sent] = deliver()

    active.refresh_from_db()
    assert sent.subject == f"Your Basic subscription is renewed until {day(active.current_period_end)}"
    assert "349.00 RUB" in sent.body
    assert when(old_end) in sent.body
    assert when(active.current_period_end) in sent.body


def test_a_failed_renewal_is_one_email_with_the_reason_the_next_try_and_the_fix(active, sandbox):
    deliver()

    renew_declined(active, sandbox)
    [first] = deliver()
    with clock.moved_to(active.next_renewal_attempt_at + timedelta(minutes=1)):
        renewals.subscription_retry_past_due()
    [second] = deliver()

    assert active.status == SubscriptionStatus.PAST_DUE
    assert first.to == [active.viewer_email]
    assert first.subject == "We couldn't renew your Basic subscription"
    assert "299.00 RUB" in first.body
    assert "there was not enough money on the card" in first.body
    assert when(active.next_renewal_attempt_at) in first.body
    assert "make sure the card has enough money" in first.body
    assert settings.MAIL_SUPPORT_EMAIL in first.body
    active.refresh_from_db()
    assert second.subject == "We still couldn't renew your Basic subscription"
    assert when(active.next_renewal_attempt_at) in second.body
    assert Email.objects.filter(event__type="subscription.renewal_failed").count() == 0


def test_the_end_after_the_last_failed_try_tells_why(active, sandbox):
    renew_declined(active, sandbox)
    for _ in range(len(settings.DUNNING_RETRY_DAYS)):
        with clock.moved_to(active.next_renewal_attempt_at + timedelta(minutes=1)):
            renewals.subscription_retry_past_due()
        active.refresh_from_db()
    assert active.status == SubscriptionStatus.EXPIRED

    deliver()

    expired = email_of("subscription.expired")
    assert expired.subject == "Your Basic subscription has ended"
    assert "we tried to charge your card (Bank card *4444) 4 times" in expired.body_text
    assert "the last time there was not enough money on the card" in expired.body_text


def test_revoked_autopayments_say_so_at_once_and_again_when_the_paid_period_ends(active, sandbox):
    deliver()
    sandbox.emulator.revoke_payment_method(active.payment_method.provider_method_id)

    with clock.moved_to(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
    [revoked] = deliver()
    with clock.moved_to(active.current_period_end + timedelta(minutes=1)):
        lifecycle.subscription_expire_due()
    [ended] = deliver()

    assert revoked.subject == "Automatic payments are off: Basic will not renew"
    assert "Automatic payments with your card (Bank card *4444) were switched off" in revoked.body
    assert f"You keep watching until {when(active.current_period_end)}" in revoked.body
    assert ended.subject == "Your Basic subscription has ended"
    assert "automatic payments with your card (Bank card *4444) were switched off" in ended.body


def test_a_subscription_not_renewed_ends_with_its_period_and_says_so(viewer, active):
    services.subscription_set_auto_renew(viewer_id=viewer.id, subscription_id=active.pk, enabled=False)
    deliver()

    with clock.moved_to(active.current_period_end + timedelta(minutes=1)):
        lifecycle.subscription_expire_due()
    [sent] = deliver()

    assert sent.subject == "Your Basic subscription has ended"
    assert f"Auto-renewal was off, so it ended with its period on {day(active.current_period_end)}" in sent.body


def test_a_cancellation_at_the_period_end_tells_until_when_then_that_it_ended(viewer, active):
    deliver()

    cancel(viewer, active, CancelMode.AT_PERIOD_END)
    [scheduled] = deliver()
    with clock.moved_to(active.current_period_end + timedelta(minutes=1)):
        lifecycle.subscription_expire_due()
    [ended] = deliver()

    assert scheduled.subject == f"Your Basic subscription ends on {day(active.current_period_end)}"
    assert f"You keep watching until {when(active.current_period_end)}" in scheduled.body
    assert ended.subject == "Your Basic subscription is canceled"
    assert f"ended on {day(active.current_period_end)}, as you asked" in ended.body


def test_a_cancellation_with_a_refund_is_one_email_with_the_amount(viewer, active):
    deliver()

    cancel(viewer, active)
    [sent] = deliver()

    assert sent.subject == "Your Basic subscription is canceled and 299.00 RUB refunded"
    assert "we've refunded 299.00 RUB to your card" in sent.body
    refund_email = email_of("refund.succeeded")
    assert refund_email.status == EmailStatus.SKIPPED
    assert refund_email.skip_reason == "told in the cancellation email"


def test_a_refund_that_ends_nothing_tells_the_amount(active, admin_user):
    deliver()

    services.payment_refund_by_operator(
        payment_id=active.payments.get().pk, operator=admin_user, reason="Goodwill", amount=Money.of("100.00", "RUB")
    )
    [sent] = deliver()

    assert sent.to == [active.viewer_email]
    assert sent.subject == "Your refund of 100.00 RUB is on its way"
    assert "We've refunded 100.00 RUB of your 299.00 RUB payment" in sent.body


def test_a_refund_yookassa_cancels_says_the_subscription_is_unchanged_and_whom_to_ask(viewer, active, sandbox):
    deliver()
    sandbox.emulator.refund_outcome = RefundOutcome.CANCELED

    with pytest.raises(RefundCanceled):
        cancel(viewer, active)
    [sent] = deliver()

    assert sent.subject == "Your refund of 299.00 RUB didn't go through"
    assert "the refund was declined" in sent.body
    assert f"Your subscription is unchanged: it stays active until {when(active.current_period_end)}" in sent.body
    assert settings.MAIL_SUPPORT_EMAIL in sent.body
    assert settings.MAIL_SUPPORT_EMAIL in html_of(sent)


def test_switching_auto_renewal_off_and_on_is_told(viewer, active):
    deliver()

    services.subscription_set_auto_renew(viewer_id=viewer.id, subscription_id=active.pk, enabled=False)
    [off] = deliver()
    services.subscription_set_auto_renew(viewer_id=viewer.id, subscription_id=active.pk, enabled=True)
    [on] = deliver()

    assert off.subject == "Auto-renewal of your Basic subscription is off"
    assert f"You keep watching until {when(active.current_period_end)}" in off.body
    assert on.subject == "Auto-renewal of your Basic subscription is on"
    assert f"Around {day(active.current_period_end)} we will charge 299.00 RUB" in on.body


def test_removing_the_card_is_told(viewer, active):
    deliver()

    services.payment_method_remove(viewer_id=viewer.id, payment_method_id=active.payment_method_id)
    [sent] = deliver()

    assert sent.subject == "Your card is removed: Basic will not renew"
    assert "You removed your card (Bank card *4444)" in sent.body
    assert when(active.current_period_end) in sent.body


def test_an_event_of_a_viewer_without_an_email_address_is_skipped(viewer, plan):
    subscribe_and_pay(dataclasses.replace(viewer, email=""), plan)

    sent = deliver()

    email = email_of("subscription.activated")
    assert sent == []
    assert email.status == EmailStatus.SKIPPED
    assert email.skip_reason == "no email address"
    assert email.subject == "Your Basic subscription is active"


def test_events_that_tell_the_viewer_nothing_make_no_email(viewer, plan):
    subscribe_and_pay(viewer, plan)

    deliver()

    events = set(BillingEvent.objects.values_list("type", flat=True))
    assert {"subscription.created", "payment.created", "payment.succeeded"} <= events
    assert list(Email.objects.values_list("event__type", flat=True)) == ["subscription.activated"]


def test_the_text_body_is_not_html_escaped_and_the_html_body_is(viewer, plan):
    plan.name = "Kids & <Family>"
    plan.save()

    subscribe_and_pay(viewer, plan)
    [sent] = deliver()

    assert "Your Kids & <Family> subscription is active" in sent.body
    assert "Kids &amp; &lt;Family&gt;" in html_of(sent)
    assert "<Family>" not in html_of(sent)
