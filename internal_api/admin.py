"""Operators see the services' keys by prefix (never the key: it is not stored) and revoke them;
keys are made with `manage.py service_key_create`, which shows the key once."""

from django.contrib import admin, messages

from internal_api.credentials import service_key_revoke
from internal_api.models import ServiceCredential


@admin.register(ServiceCredential)
class ServiceCredentialAdmin(admin.ModelAdmin):
    list_display = ["service", "prefix", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["service"]
    search_fields = ["service", "prefix"]
    fields = ["service", "prefix", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        for credential in queryset:
            service_key_revoke(prefix=credential.prefix)
        messages.success(request, f"Revoked {queryset.count()} key(s).")
