"""``/`` leads to the admin, and the admin's "View site" leads somewhere real."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_root_redirects_to_the_admin(client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    login = client.get("/", follow=True)
    assert login.status_code == 200
    assert login.redirect_chain[-1][0].startswith("/admin/login/")


@pytest.mark.django_db
def test_admin_view_site_opens_the_api_docs(admin_client) -> None:
    page = admin_client.get("/admin/")
    assert page.status_code == 200
    assert b'<a href="/api/docs/">View site</a>' in page.content
    assert admin_client.get("/api/docs/").status_code == 200
