"""Security headers: the CSP reaches every page (the cached status page too), and production
believes X-Forwarded-Proto only when a proxy is declared."""

import pytest
from django.test import Client

from tests.test_project import _manage, _production_env


@pytest.mark.parametrize("path", ["/status/", "/status/subscribe/", "/accounts/login/"])
def test_pages_carry_a_strict_content_security_policy(db, path):
    policy = Client().get(path)["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy


def test_api_docs_page_alone_allows_swagger_ui_inline_styles(admin_user):
    client = Client()
    client.force_login(admin_user)
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy
    # The split view: Swagger UI's start-up code is a separate script, not inline.
    assert b"<script>" not in response.content


SHOW_PROXY_HEADER = "from django.conf import settings as s; print(s.SECURE_PROXY_SSL_HEADER)"


def test_production_trusts_x_forwarded_proto_only_behind_a_declared_proxy():
    direct = _manage("shell", "-c", SHOW_PROXY_HEADER, env=_production_env())
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout.strip().splitlines()[-1] == "None"
    proxied = _manage(
        "shell", "-c", SHOW_PROXY_HEADER, env=_production_env(QUELL_TRUSTED_PROXY_COUNT="1")
    )
    assert proxied.returncode == 0, proxied.stderr
    assert proxied.stdout.strip().splitlines()[-1] == "('HTTP_X_FORWARDED_PROTO', 'https')"
