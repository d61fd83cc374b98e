"""The Celery application: configuration from Django settings, tasks discovered in each app."""

import logging
import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("quell")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)


@worker_ready.connect
def dispatch_queued_work_when_ready(sender=None, **kwargs):
    """A worker that starts listening sends the work queued in the database (runs queued before
    any worker listened, tasks parked during a broker outage), instead of leaving it to the
    stuck-run sweep minutes later. Every task claims its row, so a run sent twice executes once.
    """
    from django.db import connections

    from incidents import dispatch

    try:
        dispatch.reset_breaker()
        dispatch.dispatch_queued_work()
    except Exception:
        logger.exception("Could not dispatch the queued work at worker start")
    finally:
        # Runs in the worker's main process: leave no connection for pool children to inherit.
        connections.close_all()
