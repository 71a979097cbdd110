from django.contrib import admin

from plans.models import Plan


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "code",
        "features",
        "price",
        "currency",
        "period_count",
        "period_unit",
        "is_active",
        "position",
    ]
    list_editable = ["is_active", "position"]
    list_filter = ["is_active", "currency", "period_unit"]
    search_fields = ["code", "name"]
    readonly_fields = ["created_at", "updated_at"]
    prepopulated_fields = {"code": ["name"]}
