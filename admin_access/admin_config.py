"""Installed in place of django.contrib.admin: the same admin, on the operators' site class.

Kept apart from apps.py (one AppConfig per module keeps Django's default detection simple) and
free of model imports, since Django imports it while the app registry is still loading.
"""

from django.contrib.admin.apps import AdminConfig


class OperatorAdminConfig(AdminConfig):
    default = False
    default_site = "admin_access.sites.OperatorAdminSite"
