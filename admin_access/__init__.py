"""Who gets into the operators' admin: login lockout (django-axes), optional TOTP (django-otp)."""
