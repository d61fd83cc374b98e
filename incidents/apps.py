from django.apps import AppConfig
from django.db.models.signals import post_migrate


class IncidentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "incidents"

    def ready(self):
        # Setup, not domain flow: keeps the access groups' admin permissions current.
        post_migrate.connect(_ensure_groups, sender=self)


def _ensure_groups(sender, **kwargs):
    from .groups import ensure_groups

    ensure_groups()
