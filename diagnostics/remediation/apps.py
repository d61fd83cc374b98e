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


def _install_default_runbooks(sender, **kwargs):
    from .models import Runbook, RunbookStep
    from .runbooks.defaults import seed_runbooks

    seed_runbooks(Runbook, RunbookStep)
