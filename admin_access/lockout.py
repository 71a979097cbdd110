"""The page a locked-out admin login gets (AXES_LOCKOUT_CALLABLE), instead of axes' bare text."""

import math

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_response(request: HttpRequest, original_response=None, credentials: dict | None = None) -> HttpResponse:
    """429 with the admin's look and, when the lock lifts by itself, Retry-After.

    Axes' async middleware passes the credentials where the original response belongs; neither
    is used here, so the page is the same on daphne and under WSGI.
    """
    cool_off = get_cool_off(request)
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed logins",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "username_failure_limit": settings.ADMIN_LOGIN_USERNAME_FAILURE_LIMIT,
        "cool_off_minutes": math.ceil(cool_off.total_seconds() / 60) if cool_off else None,
    }
    response = render(request, "admin_access/lockout.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
    if cool_off:
        response["Retry-After"] = str(math.ceil(cool_off.total_seconds()))
    return response
