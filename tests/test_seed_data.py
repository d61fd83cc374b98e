"""Data the playbook ships (groups, templates, runbooks, triage tree) survives a flush.

Django's test runner flushes the database after every transactional test (live-server browser
tests among them); data that only a migration wrote would be gone for every test after it.
"""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from comms.models import MessageTemplate
from diagnostics.remediation.models import Runbook
from incidents.triage.models import TriageTree


@pytest.mark.django_db(transaction=True)
def test_playbook_data_is_reinstalled_after_a_flush():
    call_command("flush", interactive=False, verbosity=0)

    assert set(Group.objects.values_list("name", flat=True)) >= {
        "viewer",
        "responder",
        "commander",
        "admin",
    }
    assert MessageTemplate.objects.count() >= 6
    assert Runbook.objects.filter(steps__isnull=False).distinct().count() >= 4
    tree = TriageTree.objects.get(version=1)
    assert tree.status == "published"
    assert tree.nodes.count() > 10
