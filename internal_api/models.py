"""The cinema's services' credentials for the internal API: API keys, stored only as hashes."""

from django.db import models
from django.db.models import Q

SCOPE_ENTITLEMENTS_READ = "entitlements:read"
SCOPE_BILLING_READ = "billing:read"
SCOPES = (SCOPE_ENTITLEMENTS_READ, SCOPE_BILLING_READ)


class ServiceCredential(models.Model):
    """One API key of one service. A service may have two live at once (rotation: create the new
    one, move the service to it, revoke the old one). The key is shown once, when it is created;
    here are its prefix (to find the row, and for operators to tell keys apart) and the SHA-256 of
    the whole key (enough for a random 256-bit key: nothing to brute-force, no salt needed)."""

    service = models.CharField(max_length=64, help_text="Which of the cinema's services holds the key, e.g. 'auth'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Updated at most once a minute: when the key was last used, to see which keys are still in use.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["service", "-created_at"]
        constraints = [models.CheckConstraint(condition=~Q(prefix=""), name="service_credential_has_prefix")]

    def __str__(self) -> str:
        return f"{self.service} key {self.prefix}"
