from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CommsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "comms"
    verbose_name = "Communications"

    def ready(self):
        # Pending deliveries are sent by a worker as soon as it is ready (incidents.dispatch).
        from incidents.dispatch import register_queued_work

        from . import receivers  # noqa: F401  (connects the lifecycle receivers)
        from .services.common import pending_delivery_calls

        register_queued_work(pending_delivery_calls)

        from incidents import registry

        from .metrics import write_metrics

        registry.register_panel(
            registry.Panel("comms", "Communications", "comms/incident_panel.html", order=30)
        )
        registry.register_metrics(registry.MetricsWriter("comms", write_metrics, order=20))

        # Setup, not domain flow: the playbook's templates exist after every migrate (and after
        # a test database flush), like the access groups. Existing ones are never overwritten.
        post_migrate.connect(_install_default_templates, sender=self)


def _install_default_templates(sender, using="default", **kwargs):
    from .services import templates_install_defaults

    templates_install_defaults()
