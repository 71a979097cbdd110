"""Operators see every delivery with its attempts and answers, send chosen ones again, replay a
range of events to an endpoint, and enable an endpoint that a 410 disabled."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse

from billing.admin import ReadOnlyAdmin
from billing.events import BillingEventType
from deliveries.endpoints import endpoint_enable
from deliveries.models import Delivery, DeliveryAttempt, Endpoint
from deliveries.services import delivery_replay, delivery_resend


def mask(secret: str) -> str:
    return f"whsec_…{secret[-4:]}" if secret else ""


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    # Never shown back: left empty on a change, the secret stays as it is.
    secret = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False)
    previous_secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="While rotating: the old secret, which still signs beside the new one. Empty: keep; '-': clear.",
    )
    event_types = forms.MultipleChoiceField(
        choices=BillingEventType.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = Endpoint
        fields = ["name", "url", "secret", "previous_secret", "event_types", "enabled"]

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        if not secret:
            if not self.instance.pk:
                raise ValidationError("A new endpoint needs a secret (whsec_...).")
            return self.instance.secret
        return secret

    def clean_previous_secret(self) -> str:
        previous = self.cleaned_data["previous_secret"]
        if previous == "-":
            return ""
        return previous or self.instance.previous_secret


class ReplayForm(forms.Form):
    from_id = forms.IntegerField(required=False, min_value=1, label="From event id")
    to_id = forms.IntegerField(required=False, min_value=1, label="To event id")
    from_time = forms.DateTimeField(required=False, help_text="YYYY-MM-DD HH:MM:SS")
    to_time = forms.DateTimeField(required=False)

    def clean(self) -> dict:
        data = super().clean()
        if not any(data.get(name) for name in ("from_id", "to_id", "from_time", "to_time")):
            raise ValidationError("Give a range: event ids, times, or both.")
        return data


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["name", "url", "masked_secret", "rotating", "enabled", "disabled_reason", "from_settings"]
    list_filter = ["enabled", "from_settings"]
    actions = ["enable_again", "replay_range"]

    @admin.display(description="secret")
    def masked_secret(self, endpoint: Endpoint) -> str:
        return mask(endpoint.secret)

    @admin.display(description="rotating", boolean=True)
    def rotating(self, endpoint: Endpoint) -> bool:
        return bool(endpoint.previous_secret)

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        fields = ["disabled_reason", "disabled_at", "from_settings"]
        if obj is not None and obj.from_settings:
            # The settings write these over at each sync: editing them here would not last.
            fields += ["name", "url", "event_types"]
        return fields

    def get_fields(self, request, obj=None) -> list[str]:
        if obj is not None and obj.from_settings:
            return ["name", "url", "event_types", "enabled", "disabled_reason", "disabled_at", "from_settings"]
        return [*EndpointForm.Meta.fields, "disabled_reason", "disabled_at", "from_settings"]

    @admin.action(description="Enable again (pending deliveries are sent first)", permissions=["change"])
    def enable_again(self, request, queryset) -> None:
        for endpoint in queryset:
            waiting = endpoint_enable(endpoint_id=endpoint.pk)
            self.message_user(request, f"{endpoint.name} enabled; {waiting} delivery(ies) due now.", messages.SUCCESS)

    @admin.action(description="Replay a range of events to the endpoint", permissions=["change"])
    def replay_range(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one endpoint to replay to.", messages.ERROR)
            return None
        endpoint = queryset.get()
        form = ReplayForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            count = delivery_replay(endpoint_id=endpoint.pk, **form.cleaned_data)
            self.message_user(request, f"{count} delivery(ies) to {endpoint.name} due now.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Replay events to {endpoint.name}",
            "endpoint": endpoint,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/deliveries/replay.html", context)


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["started_at", "duration_ms", "status_code", "response_body", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "event_id", "endpoint", "viewer_id", "status", "attempts", "next_attempt_at"]
    list_filter = ["endpoint", "status", "event_type"]
    search_fields = ["viewer_id", "event__id"]
    list_select_related = ["endpoint"]
    date_hierarchy = "created_at"
    inlines = [AttemptInline]
    actions = ["resend_now"]

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("deliveries.change_delivery")

    @admin.action(description="Re-send now", permissions=["resend"])
    def resend_now(self, request, queryset) -> None:
        count = delivery_resend(delivery_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} delivery(ies) will be sent again now.", messages.SUCCESS)
