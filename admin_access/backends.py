from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class AdminLoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check, first in AUTHENTICATION_BACKENDS; it authenticates no one.

    Axes refuses (raises) an authenticate() call without a request. Every login from the network
    comes through the admin's form, which passes one; a call without one is our own code's (the
    test client's login(), a shell), which has no client to lock out, so it goes on to the next
    backend instead.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs
    ):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
