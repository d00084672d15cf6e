"""``python manage.py create_api_key USER [--priority CLASS] [--name NAME] [--rate N/period]``:
create USER if needed (without a password: it can use only its keys) and print a new
API key once. The key is not stored anywhere; keep it."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from workers.queues import PriorityClass
from ...services import InvalidRate, api_key_create


class Command(BaseCommand):
    help = "Create an API key for USER (the user is created if missing) and print it once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--priority", default=PriorityClass.INTERACTIVE, choices=PriorityClass.values,
                            help="the class of work the key's requests belong to (default: interactive)")
        parser.add_argument("--name", default="", help="what the key is for")
        parser.add_argument("--rate", default="", help="per-key request rate, e.g. 30/min (default: SLUICE_THROTTLE_RATE_API)")

    def handle(self, *args, username, priority, name, rate, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username=username)  # unusable password
            self.stderr.write(f"created user {username}")
        elif not user.is_active:
            raise CommandError(f"user {username} is inactive; activate it in the admin first")
        try:
            key, raw_key = api_key_create(user=user, name=name, priority=priority, rate=rate)
        except InvalidRate as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"API key {key.prefix}… for {username} (priority {priority}); it is shown only now:")
        self.stdout.write(raw_key)
