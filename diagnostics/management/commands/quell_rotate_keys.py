"""Re-encrypt every stored target credential with the newest QUELL_FERNET_KEYS key."""

from django.core.management.base import BaseCommand, CommandError

from diagnostics import crypto, services


class Command(BaseCommand):
    help = (
        "Re-encrypt target passwords and DSNs with the first key of QUELL_FERNET_KEYS. Put the "
        "new key first, keep the old ones after it, run this, then remove the old keys."
    )

    def handle(self, *args, **options):
        try:
            crypto.fernet()
        except crypto.SecretError as exc:
            raise CommandError(str(exc)) from None
        counts = services.rotate_secrets()
        self.stdout.write(
            f"{counts['targets']} target(s) checked, {counts['rotated']} re-encrypted, "
            f"{counts['failed']} not decryptable with any configured key."
        )
        if counts["failed"]:
            raise CommandError(
                "Some credentials could not be decrypted; keep their old key configured or "
                "re-enter those passwords."
            )
        older = len(crypto._configured_keys()) - 1
        if older:
            self.stdout.write(
                f"Every stored credential is now encrypted with the first key: the {older} "
                "other key(s) in QUELL_FERNET_KEYS are no longer needed; remove them."
            )
