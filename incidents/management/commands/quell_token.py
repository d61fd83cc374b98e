"""Create (or show) a user's REST API token: `manage.py quell_token <username> [--rotate]`."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Print the API token of a user, creating it if needed. Send it as "
        "'Authorization: Token <key>'. --rotate replaces an existing token."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--rotate", action="store_true", help="Delete the current token and issue a new one."
        )

    @transaction.atomic
    def handle(self, *args, username: str, rotate: bool, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named '{username}'. Create one with createsuperuser.")
        if not user.is_active:
            raise CommandError(f"User '{username}' is inactive; a token would not work.")
        if rotate:
            Token.objects.filter(user=user).delete()
        token, created = Token.objects.get_or_create(user=user)
        if created and not rotate:
            self.stderr.write(f"Created a token for {username}.")
        elif rotate:
            self.stderr.write(f"Rotated the token of {username}; the old one no longer works.")
        self.stdout.write(token.key)
