from django.apps import AppConfig
from django.db.models.signals import post_migrate


class IncidentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "incidents"

    def ready(self):
        from . import checks  # noqa: F401  (registers the severity policy system check)
        from .registry import FEATURE, Panel, register_panel

        # Triage is incidents' own tool (the other panels are registered by their apps).
        register_panel(
            Panel("triage", "Triage", "incidents/panels/triage.html", area=FEATURE, order=10)
        )

        # Setup, not domain flow: keeps the access groups' admin permissions current.
        post_migrate.connect(_ensure_groups, sender=self)
        # Likewise the playbook's triage tree, when no tree exists (after a flush in tests).
        post_migrate.connect(_ensure_triage_tree, sender=self)


def _ensure_groups(sender, **kwargs):
    from .groups import ensure_groups

    ensure_groups()


def _ensure_triage_tree(sender, **kwargs):
    from .triage.models import TriageAnswer, TriageNextStep, TriageNode, TriageTree
    from .triage.playbook import ensure_playbook_tree

    ensure_playbook_tree(
        Tree=TriageTree, Node=TriageNode, Answer=TriageAnswer, NextStep=TriageNextStep
    )
