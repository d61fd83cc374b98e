from django.apps import AppConfig


class IntegrityConfig(AppConfig):
    """Data integrity checks on targets: definitions, runs, results and comparisons."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "diagnostics.integrity"
    label = "integrity"
    verbose_name = "Data integrity"

    def ready(self):
        from diagnostics import triage
        from incidents.dispatch import register_queued_work

        from . import services
        from .triage import integrity_evidence

        # Queued runs are sent by a worker as soon as it is ready (incidents.dispatch).
        register_queued_work(services.queued_run_calls)
        # Triage reads integrity results through diagnostics.triage's hook (diagnostics never
        # imports this app).
        triage.register_integrity_evidence(integrity_evidence)

        from incidents import registry

        from .models import IntegrityRun

        registry.register_panel(
            registry.Panel(
                "integrity",
                "Data integrity",
                "integrity/panel.html",
                area=registry.FEATURE,
                order=40,
            )
        )
        registry.register_target_link(registry.TargetLink(IntegrityRun, "incident", "target"))
        from incidents.triage.models import TriageAction

        registry.register_triage_action(
            registry.TriageActionTarget(
                TriageAction.INTEGRITY_VERIFICATION, "integrity", "Integrity verification"
            )
        )
