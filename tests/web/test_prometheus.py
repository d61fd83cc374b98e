"""/metrics: Prometheus text format, behind a bearer token."""

import re

import pytest
from django.test import override_settings

from incidents.metrics import Exposition
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-scrape-token"
SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*)\})? (?P<value>-?[0-9.e+-]+|NaN|[+-]Inf)$'
)


def parse(text: str) -> dict[str, dict]:
    """A strict reading of the exposition format: every family declared once (HELP, TYPE)
    before its samples, samples of a family together, every line well formed."""
    families: dict[str, dict] = {}
    current = None
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in families, f"{name} declared twice"
            families[name] = {"type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and kind in ("gauge", "counter", "summary", "histogram")
            families[name]["type"] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"bad sample line: {line!r}"
            name = match["name"]
            base = re.sub(r"_(sum|count|bucket)$", "", name)
            assert current in (name, base), f"{name} outside its family ({current})"
            families[current]["samples"].append((name, match["labels"] or "", match["value"]))
    return families


def get(client, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/metrics", **headers)


def test_disabled_without_a_configured_token(client):
    with override_settings(QUELL_METRICS_TOKEN=""):
        assert get(client, "anything").status_code == 404


@override_settings(QUELL_METRICS_TOKEN=TOKEN)
def test_missing_token_is_401_with_a_bearer_challenge(client):
    response = get(client)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@override_settings(QUELL_METRICS_TOKEN=TOKEN)
def test_wrong_token_is_403(client):
    assert get(client, "wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401


@override_settings(QUELL_METRICS_TOKEN=TOKEN)
def test_session_login_is_not_enough(admin_user, client):
    client.force_login(admin_user)
    assert get(client).status_code == 401


@override_settings(QUELL_METRICS_TOKEN=TOKEN)
def test_exposition_counts_open_incidents_by_severity(client):
    IncidentFactory(severity="SEV1", status="investigating")
    IncidentFactory(severity="SEV1", status="monitoring")
    IncidentFactory(severity="SEV1", status="resolved")
    IncidentFactory(severity="SEV3", status="identified")
    response = get(client, TOKEN)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = parse(response.content.decode())
    open_samples = {
        labels: value for _, labels, value in families["quell_incidents_open"]["samples"]
    }
    assert families["quell_incidents_open"]["type"] == "gauge"
    assert open_samples == {
        'severity="SEV1"': "2",
        'severity="SEV2"': "0",
        'severity="SEV3"': "1",
        'severity="SEV4"': "0",
    }
    unacked = families["quell_incidents_unacknowledged"]["samples"]
    assert ("quell_incidents_unacknowledged", 'severity="SEV1"', "2") in unacked
    assert "quell_metrics_scrape_duration_seconds" in families


@override_settings(QUELL_METRICS_TOKEN=TOKEN)
def test_other_apps_write_their_metrics_through_the_registry(client):
    families = parse(get(client, TOKEN).content.decode())
    assert families["quell_diagnostic_run_failures_total"]["type"] == "counter"
    assert families["quell_diagnostic_run_failures_total"]["samples"][0][2] == "0"
    assert ("quell_diagnostic_runs_total", 'status="failed"', "0") in families[
        "quell_diagnostic_runs_total"
    ]["samples"]
    assert "quell_comms_delivery_failures_total" in families
    assert families["quell_action_items_open"]["samples"] == [("quell_action_items_open", "", "0")]
    assert families["quell_task_latency_seconds"]["type"] == "summary"


def test_label_values_are_escaped():
    out = Exposition()
    out.family("quell_test", "gauge", "A test.")
    out.sample("quell_test", 1, {"name": 'a "quoted"\\ line\nbreak'})
    text = out.render()
    assert 'quell_test{name="a \\"quoted\\"\\\\ line\\nbreak"} 1' in text
    parse(text)
