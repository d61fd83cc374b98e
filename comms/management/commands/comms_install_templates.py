"""Install the playbook's default message templates; --reset restores edited ones."""

from django.core.management.base import BaseCommand

from comms.services import templates_install_defaults


class Command(BaseCommand):
    help = "Install the default communication templates (missing ones, or all with --reset)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset", action="store_true", help="Overwrite edited default templates."
        )

    def handle(self, *args, reset=False, **options):
        count = templates_install_defaults(overwrite=reset)
        self.stdout.write(f"{count} template(s) installed.")
