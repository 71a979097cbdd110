from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.validators import MaxLengthValidator
from django_otp.admin import OTPAdminAuthenticationForm


class _UsernameLengthChecked:
    """Django's AuthenticationForm sets the username's max_length after the field is built, so no
    validator checks it: an overlong username reached axes, whose varchar(255) refused it (a 500 on
    PostgreSQL). Checked here, it is the form's error and authentication is never tried."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        username = self.fields["username"]
        username.validators.append(MaxLengthValidator(username.max_length))


class OperatorAuthenticationForm(_UsernameLengthChecked, AdminAuthenticationForm):
    pass


class OperatorOTPAuthenticationForm(_UsernameLengthChecked, OTPAdminAuthenticationForm):
    pass
