"""Operators read everything here; changes go through billing's services (actions come with them)."""

from django.contrib import admin

from billing.models import BillingEvent, ClientRequest, Payment, PaymentMethod, Subscription


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PaymentInline(admin.TabularInline):
    model = Payment
    fields = ["created_at", "kind", "amount", "currency", "status", "cancellation_reason", "provider_payment_id"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    ordering = ["-created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["id", "viewer_email", "plan", "status", "current_period_end", "auto_renew", "created_at"]
    list_filter = ["status", "plan", "auto_renew"]
    search_fields = ["=id", "viewer_id", "viewer_email", "payments__provider_payment_id"]
    list_select_related = ["plan"]
    date_hierarchy = "created_at"
    inlines = [PaymentInline]


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
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

    @admin.display(description="viewer email", ordering="subscription__viewer_email")
    def subscription_email(self, payment: Payment) -> str:
        return payment.subscription.viewer_email

    @admin.display(ordering="subscription__plan")
    def plan(self, payment: Payment) -> str:
        return payment.subscription.plan.name


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
