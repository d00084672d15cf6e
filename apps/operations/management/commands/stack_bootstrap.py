"""Run by ``stack up``: apply migrations, collect static files, ensure the admin user,
build (or reuse) the embedding encoder before any worker loads it."""
import os

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Migrate, collect static files, create the admin user from SLUICE_ADMIN_USER/PASSWORD and build the "
            "embedding encoder (idempotent).")

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        call_command("embedding_build", stdout=self.stdout)
        user, password = os.environ.get("SLUICE_ADMIN_USER"), os.environ.get("SLUICE_ADMIN_PASSWORD")
        User = get_user_model()
        if user and password and not User.objects.filter(username=user).exists():
            User.objects.create_superuser(username=user, email="", password=password)
            self.stdout.write(f"created admin user {user}")
