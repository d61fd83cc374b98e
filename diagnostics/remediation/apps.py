from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RemediationConfig(AppConfig):
    """Guarded remediation (cancel/terminate a backend) and runbooks."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "diagnostics.remediation"
    label = "remediation"
    verbose_name = "Remediation and runbooks"

    def ready(self):
        # Setup, not domain flow: the playbook's runbooks exist after every migrate and after a
        # database flush (tests), like the access groups. Edited runbooks are left as they are.
        post_migrate.connect(_install_default_runbooks, sender=self)

        from incidents import registry

        from .models import RemediationAction

        for key, title, template, order in (
            ("remediation", "Remediation", "remediation/remediation_panel.html", 20),
            ("runbooks", "Runbooks", "remediation/runbooks_panel.html", 30),
        ):
            registry.register_panel(
                registry.Panel(key, title, template, area=registry.FEATURE, order=order)
            )
        registry.register_target_link(registry.TargetLink(RemediationAction, "incident", "target"))
        _register_triage_actions(registry)


def _install_default_runbooks(sender, **kwargs):
    from .models import Runbook, RunbookStep
    from .runbooks.defaults import seed_runbooks

    seed_runbooks(Runbook, RunbookStep)


def _register_triage_actions(registry) -> None:
    """The triage next steps remediation serves: its panel, and starting one of its runbooks."""
    from incidents.triage.models import TriageAction

    from .runbooks.defaults import DEFAULT_RUNBOOKS

    seeded = {runbook["key"] for runbook in DEFAULT_RUNBOOKS}
    registry.register_triage_action(
        registry.TriageActionTarget(TriageAction.REMEDIATION, "remediation", "Remediation")
    )
    for action, runbook, label in (
        (TriageAction.PITR_RUNBOOK, "point-in-time-recovery", "Point-in-time recovery runbook"),
        (TriageAction.SCHEMA_ROLLBACK_RUNBOOK, "schema-rollback", "Schema rollback runbook"),
        (TriageAction.MITIGATION_RUNBOOK, "quick-mitigation", "Quick mitigation runbook"),
    ):
        if runbook not in seeded:  # the runbooks this app seeds: a typo fails at start-up
            raise LookupError(f"Triage names runbook {runbook!r}, which is not seeded.")
        registry.register_triage_action(
            registry.TriageActionTarget(
                action,
                "runbooks",
                label,
                runbook=runbook,
                run_route="remediation:incident-runbook-start",
            )
        )
