"""``django.contrib.admin`` with Sluice's admin site (the queue page); listed in
INSTALLED_APPS in place of ``django.contrib.admin``."""
from django.contrib.admin.apps import AdminConfig


class SluiceAdminConfig(AdminConfig):
    default_site = "apps.operations.admin_site.SluiceAdminSite"

