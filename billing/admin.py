"""Operators read everything here; the only changes are actions that go through billing's services."""

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from billing import services
from billing.errors import BillingError
from billing.models import BillingEvent, ClientRequest, Payment, PaymentMethod, Refund, RefundStatus, Subscription
from billing.money import Money

REASON_MAX_LENGTH = Refund._meta.get_field("reason").max_length


class ReadOnlyAdmin(admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """History shown on a case page: nothing is added, changed or deleted from it."""

    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RefundPermission:
    """Refund actions need the permission to add refunds."""

    def has_refund_permission(self, request) -> bool:
        return request.user.has_perm("billing.add_refund")


class RefundConfirmationForm(forms.Form):
    """What the confirmation page posts back: the reason (it must fit its column, untruncated)."""

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        error_messages={
            "required": "A reason is required.",
            "max_length": "A reason has at most %(limit_value)d characters; this one has %(show_value)d.",
        },
    )


def _confirmed_reason(modeladmin, request) -> str | None:
    form = RefundConfirmationForm(request.POST)
    if form.is_valid():
        return form.cleaned_data["reason"]
    for error in form.errors["reason"]:
        modeladmin.message_user(request, error, messages.ERROR)
    return None


def _confirmed_amount(modeladmin, request, target, currency: str) -> Money | None:
    """The refund the operator saw on the confirmation page for `target`, as posted back."""
    try:
        return Money(Decimal(request.POST.get(f"quoted-{target.pk}", "")), currency)
    except (InvalidOperation, ValueError):
        modeladmin.message_user(
            request, f"{target}: no confirmed amount; confirm it on the confirmation page.", messages.ERROR
        )
        return None


def _confirm(modeladmin, request, *, rows, action, title, explanation, submit_label) -> TemplateResponse:
    return TemplateResponse(
        request,
        "admin/billing/confirm_refunds.html",
        {
            **modeladmin.admin_site.each_context(request),
            "opts": modeladmin.model._meta,
            "rows": rows,
            "action": action,
            "title": title,
            "explanation": explanation,
            "submit_label": submit_label,
            "reason_max_length": REASON_MAX_LENGTH,
        },
    )


def _refund_each(modeladmin, request, targets, *, currency_of, refund) -> None:
    """`refund(target, confirmed amount, reason)` for each target whose amount the operator
    confirmed, each reported on its own (one failing does not stop the others); nothing without a
    valid reason."""
    reason = _confirmed_reason(modeladmin, request)
    if reason is None:
        return
    for target in targets:
        confirmed = _confirmed_amount(modeladmin, request, target, currency_of(target))
        if confirmed is None:
            continue
        try:
            made = refund(target, confirmed, reason)
        except BillingError as error:
            _report_failure(modeladmin, request, target, error)
            continue
        _report(modeladmin, request, target, made)


def _report_failure(modeladmin, request, target, error: BillingError) -> None:
    """A failure before a refund was committed changes nothing; after, the refund is reported."""
    refund = error.result.get("refund")
    if refund is None:
        modeladmin.message_user(request, f"{target}: {error.message}", messages.ERROR)
    else:
        _report(modeladmin, request, target, refund, error)


def _report(modeladmin, request, target, refund, problem: BillingError | None = None) -> None:
    if problem is not None:
        level = messages.ERROR if refund.status == RefundStatus.CANCELED else messages.WARNING
        modeladmin.message_user(request, f"{target}: refund {refund.pk} is {refund.status}: {problem.message}", level)
    else:
        modeladmin.message_user(request, f"{target}: refund of {refund.money} is {refund.status}.", messages.SUCCESS)


class RefundInline(ReadOnlyInline):
    model = Refund
    fk_name = "payment"
    fields = ["created_at", "amount", "currency", "status", "initiator", "operator", "reason", "cancellation_reason"]
    readonly_fields = fields
    show_change_link = True
    ordering = ["-created_at"]


class BillingEventInline(ReadOnlyInline):
    """Each step of a subscription's life (activation, renewals, failures, dunning, the end)."""

    model = BillingEvent
    fk_name = "subscription"
    fields = ["created_at", "type", "payment", "refund", "payload"]
    readonly_fields = fields
    ordering = ["-id"]
    verbose_name_plural = "History"


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = [
        "created_at",
        "kind",
        "period_start",
        "amount",
        "currency",
        "status",
        "cancellation_reason",
        "provider_payment_id",
    ]
    readonly_fields = fields
    show_change_link = True
    ordering = ["-created_at"]


@admin.register(Subscription)
class SubscriptionAdmin(RefundPermission, ReadOnlyAdmin):
    list_display = [
        "id",
        "viewer_email",
        "plan",
        "status",
        "current_period_end",
        "auto_renew",
        "cancel_at_period_end",
        "renewal_failures",
        "next_renewal_attempt_at",
        "created_at",
    ]
    list_filter = ["status", "plan", "auto_renew", "cancel_at_period_end", "renewal_failures"]
    actions = ["cancel_with_refund"]
    search_fields = ["=id", "viewer_id", "viewer_email", "payments__provider_payment_id"]
    list_select_related = ["plan"]
    date_hierarchy = "created_at"
    inlines = [PaymentInline, BillingEventInline]

    @admin.action(description="Cancel now, refunding per the refund rule", permissions=["refund"])
    def cancel_with_refund(self, request, queryset):
        if request.POST.get("confirm") != "yes":
            rows = []
            for subscription in queryset.select_related("plan"):
                quote, payment = services.subscription_refund_quote(subscription=subscription)
                rows.append(
                    {
                        "object": subscription,
                        "email": subscription.viewer_email,
                        "viewer_id": subscription.viewer_id,
                        "paid": payment.money if payment else "-",
                        "refund": quote.amount,
                        "rule": quote.rule,
                    }
                )
            return _confirm(
                self,
                request,
                rows=rows,
                action="cancel_with_refund",
                title="Cancel now with a refund",
                explanation=(
                    "Each subscription ends when its refund succeeds; a refund YooKassa refuses leaves it as it is."
                ),
                submit_label="Refund and cancel",
            )
        _refund_each(
            self,
            request,
            queryset.select_related("plan"),
            currency_of=lambda subscription: subscription.plan.currency,
            refund=lambda subscription, confirmed, reason: (
                services.subscription_cancel_with_refund_by_operator(
                    subscription_id=subscription.pk, operator=request.user, reason=reason, expected_amount=confirmed
                ).refund
            ),
        )
        return None


@admin.register(Payment)
class PaymentAdmin(RefundPermission, ReadOnlyAdmin):
    list_display = [
        "created_at",
        "subscription_email",
        "plan",
        "kind",
        "amount",
        "currency",
        "status",
        "cancellation_reason",
        "provider_payment_id",
    ]
    list_filter = ["status", "kind", "subscription__plan", "cancellation_reason"]
    search_fields = ["=id", "viewer_id", "subscription__viewer_email", "provider_payment_id", "idempotence_key"]
    list_select_related = ["subscription__plan"]
    date_hierarchy = "created_at"
    inlines = [RefundInline]
    actions = ["refund_remainder"]

    @admin.action(description="Refund what is left of the payment (the subscription stays)", permissions=["refund"])
    def refund_remainder(self, request, queryset):
        if request.POST.get("confirm") != "yes":
            rows = [
                {
                    "object": payment,
                    "email": payment.subscription.viewer_email,
                    "viewer_id": payment.viewer_id,
                    "paid": payment.money,
                    "refund": payment.refundable_left(),
                    "rule": "the remainder",
                }
                for payment in queryset.select_related("subscription")
            ]
            return _confirm(
                self,
                request,
                rows=rows,
                action="refund_remainder",
                title="Refund payments",
                explanation="Gives back what is left of each payment; subscriptions are not changed.",
                submit_label="Refund",
            )
        _refund_each(
            self,
            request,
            queryset,
            currency_of=lambda payment: payment.currency,
            # The amount shown, or nothing: a smaller remainder by now is refused.
            refund=lambda payment, confirmed, reason: services.payment_refund_by_operator(
                payment_id=payment.pk, operator=request.user, reason=reason, amount=confirmed
            ),
        )
        return None

    @admin.display(description="viewer email", ordering="subscription__viewer_email")
    def subscription_email(self, payment: Payment) -> str:
        return payment.subscription.viewer_email

    @admin.display(ordering="subscription__plan")
    def plan(self, payment: Payment) -> str:
        return payment.subscription.plan.name


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    """Every refund; the ones YooKassa canceled are one filter away (status, who and why)."""

    list_display = [
        "created_at",
        "payment",
        "amount",
        "currency",
        "status",
        "initiator",
        "operator",
        "ends_subscription",
        "cancellation_party",
        "cancellation_reason",
        "reason",
    ]
    list_filter = ["status", "initiator", "ends_subscription", "cancellation_party", "cancellation_reason"]
    search_fields = [
        "=id",
        "provider_refund_id",
        "payment__provider_payment_id",
        "payment__viewer_id",
        "payment__subscription__viewer_email",
    ]
    list_select_related = ["payment", "operator"]
    date_hierarchy = "created_at"


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdmin):
    list_display = ["title", "viewer_id", "card_type", "expiry_month", "expiry_year", "is_active", "created_at"]
    list_filter = ["is_active", "type", "card_type"]
    search_fields = ["viewer_id", "provider_method_id", "subscriptions__viewer_email"]


@admin.register(BillingEvent)
class BillingEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "viewer_id", "subscription", "payment", "created_at"]
    list_filter = ["type"]
    search_fields = ["viewer_id", "=subscription__id", "=payment__id"]
    list_select_related = ["subscription__plan", "payment"]


@admin.register(ClientRequest)
class ClientRequestAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "viewer_id", "operation", "key", "payment"]
    list_filter = ["operation"]
    search_fields = ["viewer_id", "key"]
