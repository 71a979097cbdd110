from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django_otp.admin import OTPAdminSite

from admin_access.forms import OperatorAuthenticationForm, OperatorOTPAuthenticationForm


class OperatorAdminSite(admin.AdminSite):
    """Django's admin site; with ADMIN_OTP_REQUIRED a password alone no longer gets in.

    With the setting on it behaves as django-otp's OTPAdminSite: the login form asks for a token
    from the operator's device, and a session not verified by a device (one that logged in
    before the setting was turned on, say) is treated as not staff. The setting is read on each
    request, so turning it off needs no other change.
    """

    @property
    def login_form(self):
        return OperatorOTPAuthenticationForm if settings.ADMIN_OTP_REQUIRED else OperatorAuthenticationForm

    @property
    def login_template(self):
        return OTPAdminSite.login_template if settings.ADMIN_OTP_REQUIRED else None

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        return not settings.ADMIN_OTP_REQUIRED or request.user.is_verified()
