"""The Celery application: configuration from Django settings, tasks discovered in each app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("quell")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
