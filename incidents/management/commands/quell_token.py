"""Issue, rotate, list and revoke a user's REST API tokens.

    manage.py quell_token <username> [--name NAME] [--expires-days N]   issue a new token
    manage.py quell_token <username> --rotate [--name NAME]             replace tokens of NAME
    manage.py quell_token <username> --list
    manage.py quell_token <username> --revoke PREFIX

Tokens are stored as digests (config.accounts.models.ApiToken): the secret is printed once, on
stdout alone, so `TOKEN=$(manage.py quell_token ci-bot)` captures it; it cannot be shown again.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from config.accounts import services
from config.accounts.models import ApiToken


class Command(BaseCommand):
    help = (
        "Issue a REST API token for a user and print its secret (once: only a digest is kept). "
        "Send it as 'Authorization: Token <secret>'. --rotate revokes the user's tokens of the "
        "same name first; --list and --revoke PREFIX manage existing ones."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="api", help="What uses the token (default: api).")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="Expire after N days (default: never)."
        )
        action = parser.add_mutually_exclusive_group()
        action.add_argument(
            "--rotate", action="store_true", help="Revoke tokens of this name, issue a new one."
        )
        action.add_argument("--list", action="store_true", help="List the user's tokens.")
        action.add_argument("--revoke", metavar="PREFIX", help="Revoke the token with PREFIX.")

    def handle(self, *args, username, name, expires_days, rotate, list, revoke, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named '{username}'. Create one with createsuperuser.")
        if list:
            self._list(user)
            return
        if revoke:
            self._revoke(user, revoke)
            return
        if not user.is_active:
            raise CommandError(f"User '{username}' is inactive; a token would not work.")
        if expires_days is not None and expires_days <= 0:
            raise CommandError("--expires-days must be a positive number of days.")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        if rotate:
            token, secret, revoked = services.token_rotate(
                user=user, name=name, expires_at=expires_at
            )
            self.stderr.write(
                f"Revoked {revoked} token(s) named '{name}' of {username}; "
                f"issued {token.prefix}…. The secret is shown once:"
            )
        else:
            token, secret = services.token_issue(user=user, name=name, expires_at=expires_at)
            self.stderr.write(
                f"Issued token '{name}' ({token.prefix}…) for {username}. The secret is shown once:"
            )
        self.stdout.write(secret)

    def _list(self, user):
        tokens = ApiToken.objects.filter(user=user)
        if not tokens:
            self.stderr.write(f"{user.username} has no API tokens.")
        for t in tokens:
            state = "revoked" if t.revoked_at else ("expired" if t.is_expired else "active")
            parts = [t.prefix, t.name, state, f"created {t.created_at:%Y-%m-%d %H:%M}"]
            if t.expires_at:
                parts.append(f"expires {t.expires_at:%Y-%m-%d %H:%M}")
            if t.last_used_at:
                parts.append(f"last used {t.last_used_at:%Y-%m-%d %H:%M}")
            self.stdout.write("  ".join(parts))

    def _revoke(self, user, prefix):
        tokens = ApiToken.objects.filter(user=user, prefix=prefix, revoked_at__isnull=True)
        if not tokens:
            raise CommandError(f"{user.username} has no active token starting with '{prefix}'.")
        for token in tokens:
            services.token_revoke(token=token)
        self.stderr.write(f"Revoked {len(tokens)} token(s) starting with '{prefix}'.")
