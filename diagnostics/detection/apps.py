from django.apps import AppConfig


class DetectionConfig(AppConfig):
    """Detection: alerts from monitoring tools and Quell's own monitors, turned into incidents.
    No models of its own (incidents carry the signals as timeline events)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "diagnostics.detection"
    label = "detection"
    verbose_name = "Detection"

    def ready(self):
        from diagnostics import services

        from .monitors import after_run

        # A monitor's run is judged once its results are stored (diagnostics never imports
        # this app: it calls the hooks registered here).
        services.register_run_finished(after_run)
