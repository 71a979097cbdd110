from django.contrib import admin

from billing.admin import ReadOnlyAdmin
from webhooks.models import UntrustedNotificationSample, UntrustedNotificationTally, YooKassaNotification


@admin.register(YooKassaNotification)
class YooKassaNotificationAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "event", "object_id", "outcome", "remote_addr", "trusted_source"]
    list_filter = ["outcome", "event", "trusted_source"]
    search_fields = [
        "object_id",
        "remote_addr",
        "payment__viewer_id",
        "payment__subscription__viewer_email",
        "payment__provider_payment_id",
    ]
    list_select_related = ["payment"]
    date_hierarchy = "received_at"
    readonly_fields = [field.name for field in YooKassaNotification._meta.fields]


@admin.register(UntrustedNotificationTally)
class UntrustedNotificationTallyAdmin(ReadOnlyAdmin):
    """Who keeps posting from outside YooKassa's networks (a new YooKassa range shows up here too)."""

    list_display = ["window_start", "source_network", "received", "over_limit", "bytes_received", "last_seen_at"]
    search_fields = ["source_network"]
    date_hierarchy = "window_start"

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "sample_remote_addr", "sample_body"]


@admin.register(UntrustedNotificationSample)
class UntrustedNotificationSampleAdmin(ReadOnlyAdmin):
    """The start of the first body of each tracked source network and window."""

    list_display = ["window_start", "source_network", "remote_addr"]
    search_fields = ["source_network", "remote_addr"]
    date_hierarchy = "window_start"
