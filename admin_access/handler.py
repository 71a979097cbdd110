"""axes' database handler, with a ceiling per username and nothing but counts kept."""

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.db.models.signals import pre_save
from django.dispatch import receiver


class AdminLoginHandler(AxesDatabaseHandler):
    """Locks by AXES_LOCKOUT_PARAMETERS at AXES_FAILURE_LIMIT, and a username from everywhere once
    ADMIN_LOGIN_USERNAME_FAILURE_LIMIT failures were counted for it from all addresses together.

    axes itself applies one limit to the largest count of all its criteria, so a plain "username"
    criterion would lock a username out from everywhere after AXES_FAILURE_LIMIT (5) failures from
    anywhere: anyone could lock any operator out with five posts. The ceiling is counted here
    instead, with a limit of its own, high enough that one mistyping operator (locked at their own
    address after 5) never reaches it, low enough that a guesser spread over many networks gets no
    more than it in all per cool-off.
    """

    def get_failures(self, request, credentials: dict | None = None) -> int:
        _without_nul(request)
        failures = super().get_failures(request, credentials)
        if self._username_failures(request, credentials) >= settings.ADMIN_LOGIN_USERNAME_FAILURE_LIMIT:
            return max(failures, get_failure_limit(request, credentials))
        return failures

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is not None:
            _without_nul(request)
        return super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender, request, user, **kwargs):
        _without_nul(request)
        return super().user_logged_in(sender, request, user, **kwargs)

    def _username_failures(self, request, credentials: dict | None) -> int:
        username = get_client_username(request, credentials)
        if username is None:
            return 0
        attempts = AccessAttempt.objects.filter(username=username)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


def _without_nul(request) -> None:
    """The client's User-Agent and Accept as axes stores them, but with NUL, which PostgreSQL's
    text refuses (a 500 on every login with one), as U+FFFD."""
    for name in ("axes_user_agent", "axes_http_accept", "axes_path_info"):
        value = getattr(request, name, None)
        if value and "\x00" in value:
            setattr(request, name, value.replace("\x00", "\ufffd"))


@receiver(pre_save, sender=AccessAttempt, dispatch_uid="admin_access.no_form_data_in_attempts")
def keep_no_form_data(sender, instance: AccessAttempt, **kwargs) -> None:
    """axes appends up to 1 KiB of each failed login's query and form to its row (no setting turns
    that off): strangers could grow one row without end. The counts are all the lock needs."""
    instance.get_data = ""
    instance.post_data = ""
