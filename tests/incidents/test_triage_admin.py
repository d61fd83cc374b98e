"""Triage tree in the admin: versions read-only once published, drafts validated, publishing."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client

from incidents.triage import selectors, services
from incidents.triage.models import TreeStatus, TriageAnswer, TriageNode, TriageTree

pytestmark = pytest.mark.django_db


class FormFields(HTMLParser):
    """The values a browser would submit from the admin's change form."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, str] = {}
        self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type") not in ("submit", "button"):
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.data[a["name"]] = a.get("value") or ("on" if a.get("type") == "checkbox" else "")
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
            self.data.setdefault(self._select, "")
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def form_data(html: str) -> dict[str, str]:
    parser = FormFields()
    parser.feed(html)
    return parser.data


@pytest.fixture
def staff(admin_user):
    c = Client()
    c.force_login(admin_user)
    return c


def test_published_version_is_read_only(staff):
    tree = selectors.tree_current()
    page = staff.get(f"/admin/incidents/triagetree/{tree.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    r = staff.post(f"/admin/incidents/triagetree/{tree.pk}/change/", {"title": "changed"})
    assert r.status_code == 403


def test_draft_action_then_cycle_refused_then_publish(staff, admin_user):
    v1 = selectors.tree_current()
    r = staff.post(
        "/admin/incidents/triagetree/",
        {"action": "make_draft", "_selected_action": [v1.pk]},
        follow=True,
    )
    assert b"Draft v2 created from v1" in r.content
    draft = TriageTree.objects.get(version=2)
    url = f"/admin/incidents/triagetree/{draft.pk}/change/"
    data = form_data(staff.get(url).content.decode())
    node_a = TriageNode.objects.get(tree=draft, chart_ref="A")
    edge_c = TriageAnswer.objects.get(tree=draft, from_node__chart_ref="C")
    row = next(
        k[: -len("-id")]
        for k, v in data.items()
        if k.startswith("answers-") and k.endswith("-id") and v == str(edge_c.pk)
    )
    data[f"{row}-to_node"] = str(node_a.pk)
    r = staff.post(url, data)
    assert r.status_code == 200 and b"form a cycle" in r.content
    assert TriageAnswer.objects.get(pk=edge_c.pk).to_node.chart_ref == "E"

    data = form_data(staff.get(url).content.decode())
    data["title"] = "Playbook tree, reworded"
    r = staff.post(url, data, follow=True)
    assert r.status_code == 200
    assert TriageTree.objects.get(pk=draft.pk).title == "Playbook tree, reworded"
    r = staff.post(
        "/admin/incidents/triagetree/",
        {"action": "publish", "_selected_action": [draft.pk]},
        follow=True,
    )
    assert b"Version 2 is now the triage tree" in r.content
    assert selectors.tree_current().version == 2
    v1.refresh_from_db()
    assert v1.status == TreeStatus.RETIRED


def test_publish_action_reports_why_a_draft_is_refused(staff):
    draft = services.tree_draft_from(tree_id=selectors.tree_current().pk)
    TriageAnswer.objects.filter(tree=draft, from_node__chart_ref="N", key="no").delete()
    r = staff.post(
        "/admin/incidents/triagetree/",
        {"action": "publish", "_selected_action": [draft.pk]},
        follow=True,
    )
    assert b"needs at least two answers" in r.content
    assert b"exactly one root" in r.content and b"blocking_queries" in r.content  # P: orphan
    assert TriageTree.objects.get(pk=draft.pk).status == TreeStatus.DRAFT


def test_walks_are_listed_read_only(staff, incident, admin_user):
    walk = services.triage_walk_start(incident_id=incident.pk, actor=admin_user)
    services.triage_walk_answer(
        incident_id=incident.pk, question="can_connect", answer="yes", actor=admin_user
    )
    assert staff.get("/admin/incidents/triagewalk/").status_code == 200
    page = staff.get(f"/admin/incidents/triagewalk/{walk.pk}/change/")
    assert page.status_code == 200 and b"Can connect to database?" in page.content
    assert b'name="_save"' not in page.content
