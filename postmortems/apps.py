from django.apps import AppConfig


class PostmortemsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "postmortems"

    def ready(self):
        from incidents import signals

        from . import receivers

        signals.incident_resolved.connect(
            receivers.on_incident_resolved, dispatch_uid="postmortems.on_incident_resolved"
        )
        signals.incident_severity_changed.connect(
            receivers.on_incident_severity_changed,
            dispatch_uid="postmortems.on_incident_severity_changed",
        )
