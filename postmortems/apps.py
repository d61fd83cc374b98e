from django.apps import AppConfig


class PostmortemsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "postmortems"

    def ready(self):
        from incidents import registry, signals

        from . import receivers
        from .selectors import action_items_summary

        # Re-read after an action on the page: a resolve opens the postmortem draft.
        registry.register_panel(
            registry.Panel(
                "postmortems",
                "Postmortem",
                "postmortems/incident_panel.html",
                order=40,
                refresh=True,
            )
        )
        registry.register_action_items(action_items_summary)
        # A resolved incident closes when its postmortem is published or waived.
        registry.register_incident_closer(self.label)

        signals.incident_resolved.connect(
            receivers.on_incident_resolved, dispatch_uid="postmortems.on_incident_resolved"
        )
        signals.incident_severity_changed.connect(
            receivers.on_incident_severity_changed,
            dispatch_uid="postmortems.on_incident_severity_changed",
        )
