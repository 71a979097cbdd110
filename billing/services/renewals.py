"""Renewals: charge the saved card once per period, and retry on the dunning schedule.

The batch locks a page of due subscriptions with SKIP LOCKED (so several workers share the load),
commits one renewal payment per subscription with its own Idempotence-Key (a unique constraint
allows one live charge per subscription and period), and only then charges them.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from billing import clock
from billing.errors import GatewayError
from billing.events import BillingEventType, PaymentCreated
from billing.models import (
    Payment,
    PaymentKind,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    first_provider_check_at,
)
from billing.selectors import subscription_list_renewable
from billing.services.dunning import subscription_list_retry_due
from billing.services.events import event_record
from billing.services.job_reports import JobReport
from billing.services.lifecycle import subscription_announce_changed_renewal_amount
from billing.services.payments import payment_create_at_provider

logger = logging.getLogger(__name__)


@dataclass
class ChargeReport(JobReport):
    """What one run did. `charged`: renewal payments it opened; `unknown`: those whose outcome is
    still to come (the janitor follows them up); `failed_ids`: payments that failed unexpectedly,
    or subscriptions whose payment could not even be opened."""

    charged: int = 0
    succeeded: int = 0
    declined: int = 0
    unknown: int = 0


def subscription_renew_due(
    *, now: datetime | None = None, page_size: int = 100, time_budget: float = 60
) -> ChargeReport:
    """Charge every active subscription whose period ends within the lead time."""
    now = now or clock.domain_now()
    due = subscription_list_renewable().filter(
        status=SubscriptionStatus.ACTIVE,
        current_period_end__lte=now + timedelta(hours=settings.RENEWAL_LEAD_TIME_HOURS),
    )
    return _charge(due, page_size=page_size, time_budget=time_budget)


def subscription_retry_past_due(
    *, now: datetime | None = None, page_size: int = 100, time_budget: float = 60
) -> ChargeReport:
    """Try again the past-due subscriptions whose next dunning attempt has come (services.dunning)."""
    due = subscription_list_retry_due(now=now or clock.domain_now())
    return _charge(due, page_size=page_size, time_budget=time_budget)


def _charge(due: QuerySet[Subscription], *, page_size: int, time_budget: float) -> ChargeReport:
    """Charge what is due, each subscription at most once per run, for at most `time_budget` seconds.

    A renewal moves the period's end forward (a failure, the next attempt), so with billing's clock
    far ahead (an --as-of run) the same subscription is due again at once: charging it again in
    the same run would take every missed period, or every retry, in one go. It waits for the next
    run.

    New pages are taken for `time_budget` seconds, and a page taken is charged to its end, unless
    YooKassa answers so slowly that this would run past twice the budget: the rest of the page then
    keeps its keys, and the janitor sends them.
    """
    report = ChargeReport()
    deadline = time.monotonic() + time_budget
    hard_deadline = deadline + time_budget
    opened_by_this_run = Payment.objects.filter(
        subscription=OuterRef("pk"), kind=PaymentKind.RENEWAL, created_at__gte=clock.real_now()
    )
    due = due.exclude(Exists(opened_by_this_run))
    unopenable: list = []
    while time.monotonic() < deadline:
        payments = _open_renewals(due.exclude(pk__in=unopenable), page_size, unopenable, report)
        if payments is None:
            break
        for payment in payments:
            report.charged += 1
            if time.monotonic() >= hard_deadline:
                report.unknown += 1
                continue
            _send(payment, report)
    return report


def _send(payment: Payment, report: ChargeReport) -> None:
    try:
        payment = payment_create_at_provider(payment=payment)
    except GatewayError as error:
        # Not confirmed (still CREATING, for the janitor), or refused (CANCELED: declined).
        payment = error.result.get("payment", payment)
    except Exception:
        # One bad row must not stall the batch: reconciliation takes the payment over.
        logger.exception("Renewal payment %s failed unexpectedly", payment.id)
        report.failed_ids.append(str(payment.id))
        return
    if payment.status == PaymentStatus.CREATING:
        report.unknown += 1
    elif payment.status == PaymentStatus.SUCCEEDED:
        report.succeeded += 1
    elif payment.status == PaymentStatus.CANCELED:
        report.declined += 1
    else:
        report.unknown += 1


def _open_renewals(
    due: QuerySet[Subscription], page_size: int, unopenable: list, report: ChargeReport
) -> list[Payment] | None:
    """Lock a page of due subscriptions no other worker holds, and commit their renewal payments.

    None when there was nothing left to lock. A subscription whose payment cannot be opened (bad
    data, a constraint) is rolled back alone, reported, and not tried again in this run.
    """
    with transaction.atomic():
        locked = list(
            due.select_for_update(skip_locked=True, of=("self",))
            .order_by("current_period_end", "pk")
            .values_list("pk", flat=True)[:page_size]
        )
        if not locked:
            return None
        # The locking query judged "due" on its snapshot: a subscription whose renewal payment
        # another worker committed meanwhile (its lock released, the row itself unchanged) passes
        # that check and gets locked. Judged again now that the rows are ours: no second payment.
        page = due.filter(pk__in=locked).select_related("plan", "payment_method").order_by("current_period_end", "pk")
        payments = []
        for subscription in page:
            try:
                with transaction.atomic():
                    payments.append(_new_renewal_payment(subscription))
            except Exception:
                logger.exception("Could not open the renewal of subscription %s", subscription.pk)
                unopenable.append(subscription.pk)
                report.failed_ids.append(str(subscription.pk))
        return payments


def _new_renewal_payment(subscription: Subscription) -> Payment:
    plan = subscription.plan
    start = subscription.current_period_end
    end = plan.period.end_after(start)
    payment = Payment(
        viewer_id=subscription.viewer_id,
        subscription=subscription,
        kind=PaymentKind.RENEWAL,
        amount=plan.price,
        currency=plan.currency,
        description=f"{plan.name}, {start:%d.%m.%Y}-{end:%d.%m.%Y}"[:128],
        payment_method=subscription.payment_method,
        period_start=start,
        receipt_email=subscription.viewer_email if settings.YOOKASSA_RECEIPTS and subscription.viewer_email else "",
        receipt_vat_code=settings.YOOKASSA_VAT_CODE if settings.YOOKASSA_RECEIPTS else None,
        next_check_at=first_provider_check_at(),
    )
    payment.idempotence_key = f"payment-{payment.id}"
    payment.save(force_insert=True)
    payment.subscription = subscription
    subscription_announce_changed_renewal_amount(subscription, amount=payment.money)
    event_record(
        subscription,
        BillingEventType.PAYMENT_CREATED,
        PaymentCreated(amount=payment.amount, currency=payment.currency, attempt=subscription.renewal_failures + 1),
        payment=payment,
    )
    return payment
