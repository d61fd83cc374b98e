from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DiagnosticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "diagnostics"

    def ready(self):
        # Registers the system check that QUELL_FERNET_KEYS is usable.
        from incidents.dispatch import register_queued_work

        from . import (
            crypto,  # noqa: F401
            own_sessions,
            target,
        )
        from .integrity.services import queued_run_calls as queued_integrity_runs
        from .services import queued_run_calls as queued_diagnostic_runs

        # Queued runs are sent by a worker as soon as it is ready (incidents.dispatch).
        register_queued_work(queued_diagnostic_runs)
        register_queued_work(queued_integrity_runs)

        # Every session Quell opens on a target is recorded, so remediation can tell Quell's
        # own sessions by identity (pid and backend_start) rather than by a name anyone can set.
        target.on_session_opened(own_sessions.remember)

        # Setup, not domain flow: the playbook's runbooks exist after every migrate and after a
        # database flush (tests), like the access groups. Edited runbooks are left as they are.
        post_migrate.connect(_install_default_runbooks, sender=self)


def _install_default_runbooks(sender, **kwargs):
    from .runbooks.defaults import seed_runbooks
    from .runbooks.models import Runbook, RunbookStep

    seed_runbooks(Runbook, RunbookStep)
