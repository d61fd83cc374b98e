from django.apps import AppConfig


class DiagnosticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "diagnostics"

    def ready(self):
        # Registers the system check that QUELL_FERNET_KEYS is usable.
        from . import crypto  # noqa: F401
