from django.apps import AppConfig


class DetectionConfig(AppConfig):
    """Detection: alerts from monitoring tools and Quell's own monitors, turned into incidents.
    Its models hold the routing state (AlertGroup) and each alert's last word (Alert)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "diagnostics.detection"
    label = "detection"
    verbose_name = "Detection"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from diagnostics import services
        from diagnostics.models import TargetDatabase
        from incidents import registry
        from incidents import signals as incident_signals

        from . import receivers
        from .monitors import after_run

        # A monitor's run is judged once its results are stored (diagnostics never imports
        # this app: it calls the hooks registered here).
        services.register_run_finished(after_run)
        # A resolved incident takes no more signals; a reopened one takes them again.
        incident_signals.incident_resolved.connect(
            receivers.close_alert_groups, dispatch_uid="detection.close_on_resolve"
        )
        incident_signals.incident_closed.connect(
            receivers.close_alert_groups, dispatch_uid="detection.close_on_close"
        )
        incident_signals.incident_reopened.connect(
            receivers.reopen_alert_groups, dispatch_uid="detection.reopen"
        )
        # At the top, under "What matters": what is firing is what a responder looks for first.
        registry.register_panel(
            registry.Panel(
                "signals", "Signals", "detection/incident_panel.html", area=registry.TOP, order=20
            )
        )
        # Target resolutions are remembered briefly; a change to a target forgets them.
        for signal in (post_save, post_delete):
            signal.connect(
                receivers.forget_target_resolutions,
                sender=TargetDatabase,
                dispatch_uid=f"detection.forget_targets.{signal is post_save}",
            )
