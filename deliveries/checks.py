"""Endpoints named in settings are checked at start: a typo would otherwise show only as
deliveries that never happen."""

from django.core import checks
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from deliveries.endpoints import endpoint_specs_from_settings
from deliveries.models import validate_event_types, validate_secret


@checks.register()
def check_configured_endpoints(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors = []
    try:
        specs = endpoint_specs_from_settings()
    except (KeyError, TypeError) as exc:
        return [
            checks.Error(f"SERVICE_WEBHOOKS: each endpoint needs name, url and secret ({exc!r}).", id="deliveries.E001")
        ]
    names = [spec.name for spec in specs]
    if len(names) != len(set(names)):
        errors.append(checks.Error(f"SERVICE_WEBHOOKS: endpoint names repeat: {names}.", id="deliveries.E002"))
    for spec in specs:
        validators = [
            (URLValidator(schemes=["http", "https"]), spec.url),
            (validate_secret, spec.secret or "missing"),
            (validate_secret, spec.previous_secret),
            (validate_event_types, spec.event_types),
        ]
        for validator, value in validators:
            try:
                validator(value)
            except ValidationError as exc:
                errors.append(
                    checks.Error(f"Webhook endpoint {spec.name!r}: {'; '.join(exc.messages)}", id="deliveries.E003")
                )
    return errors
