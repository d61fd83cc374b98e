"""The icon: linked by every page, and /favicon.ico answered without rendering a page."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_favicon_ico_redirects_to_the_static_icon_and_sets_no_cookie(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("quell/favicon.svg")
    # A 404 page here used to set a CSRF cookie racing the one of the page being loaded
    # (a fresh browser's sign-in then failed its CSRF check).
    assert not response.cookies
    assert (ROOT / "static" / "quell" / "favicon.svg").read_text().startswith("<svg")


@pytest.mark.django_db
def test_signed_out_pages_link_the_icon(client):
    for url in ("/accounts/login/", "/status/"):
        html = client.get(url).content.decode()
        assert 'rel="icon"' in html and "quell/favicon.svg" in html, url
