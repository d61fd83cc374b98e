from django.apps import AppConfig


class DiagnosticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "diagnostics"

    def ready(self):
        # Registers the system check that QUELL_FERNET_KEYS is usable.
        from incidents.affected import AffectedTargets, register_affected_targets
        from incidents.dispatch import register_queued_work

        from . import (
            crypto,  # noqa: F401
            own_sessions,
            target,
        )
        from .selectors import target_choices
        from .services import declare_with_targets
        from .services import queued_run_calls as queued_diagnostic_runs

        # Queued runs are sent by a worker as soon as it is ready (incidents.dispatch).
        register_queued_work(queued_diagnostic_runs)

        # Every session Quell opens on a target is recorded, so remediation can tell Quell's
        # own sessions by identity (pid and backend_start) rather than by a name anyone can set.
        target.on_session_opened(own_sessions.remember)

        # The web declare form offers these databases and declares through this service, so a
        # run starts at detection on each (incidents imports no app: docs/architecture.md).
        register_affected_targets(
            AffectedTargets(choices=target_choices, declare=declare_with_targets)
        )
        _register_with_incidents()


def _register_with_incidents() -> None:
    """The incident page's panels, which incidents concern which database, and /metrics."""
    from incidents import registry

    from .metrics import write_metrics
    from .models import DiagnosticRun, IncidentTarget
    from .selectors import target_filter_choices, target_names

    registry.register_panel(
        registry.Panel(
            "what-matters",
            "What matters",
            "diagnostics/incident_what_matters.html",
            area=registry.TOP,
            order=10,
        )
    )
    registry.register_panel(
        registry.Panel("diagnostics", "Diagnostics", "diagnostics/incident_panel.html", order=20)
    )
    registry.register_target_names(
        registry.TargetNames(choices=target_filter_choices, names=target_names)
    )
    # The affected-target link, and the runs made for an incident, both say it concerns that
    # database: the list's filter follows both.
    registry.register_target_link(registry.TargetLink(IncidentTarget, "incident", "target"))
    registry.register_target_link(registry.TargetLink(DiagnosticRun, "incident", "target"))
    registry.register_metrics(registry.MetricsWriter("diagnostics", write_metrics, order=10))
    _register_triage_actions(registry)


def _register_triage_actions(registry) -> None:
    """The triage next steps diagnostics serves: running the suite, and reading one check."""
    from incidents.triage.models import TriageAction

    from .checks import registry as checks

    registry.register_triage_action(
        registry.TriageActionTarget(
            TriageAction.RUN_DIAGNOSTICS,
            "diagnostics",
            "Run diagnostics",
            run_route="diagnostics:incident-run",
        )
    )
    for action, key, label in (
        (TriageAction.CHECK_MIGRATIONS, "recent_migrations", "Recent migrations"),
        (TriageAction.BLOCKING_QUERIES, "blocking_locks", "Blocking queries"),
        (TriageAction.SLOW_QUERIES, "slow_queries", "Slow queries"),
        (TriageAction.LONG_RUNNING_QUERIES, "long_running_queries", "Long-running queries"),
        (TriageAction.CONNECTIONS, "connections", "Connections"),
    ):
        # checks.get raises at start-up for a key no check has: never a dead link.
        registry.register_triage_action(
            registry.TriageActionTarget(action, "diagnostics", label, check=checks.get(key).key)
        )
