"""Operators read every email; the one change is sending FAILED ones again, through the service."""

from django.contrib import admin, messages

from billing.admin import ReadOnlyAdmin
from mail.models import Email, EmailStatus
from mail.services import email_send_again


@admin.register(Email)
class EmailAdmin(ReadOnlyAdmin):
    list_display = ["recipient", "template", "status", "attempts", "created_at", "sent_at", "delivery_status"]
    list_filter = ["status", "template", "delivery_status"]
    search_fields = ["recipient", "event__viewer_id"]
    date_hierarchy = "created_at"
    actions = ["send_again_now"]
    fieldsets = [
        (None, {"fields": ["event", "template", "recipient", "status", "skip_reason"]}),
        ("Sending", {"fields": ["attempts", "next_attempt_at", "last_error", "sent_at", "provider_message_id"]}),
        ("Delivery", {"fields": ["delivery_status", "delivery_detail", "delivery_updated_at"]}),
        ("Content", {"fields": ["subject", "body_text", "body_html"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    def has_send_again_permission(self, request) -> bool:
        return request.user.has_perm("mail.change_email")

    @admin.action(description="Send again now (failed emails only)", permissions=["send_again"])
    def send_again_now(self, request, queryset) -> None:
        failed = list(queryset.filter(status=EmailStatus.FAILED).values_list("pk", flat=True))
        count = email_send_again(email_ids=failed)
        others = queryset.count() - count
        self.message_user(request, f"{count} email(s) will be sent again now.", messages.SUCCESS)
        if others:
            self.message_user(request, f"{others} email(s) were not failed and are left as they are.", messages.WARNING)
