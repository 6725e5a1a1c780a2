"""Liveness and readiness probes."""

from __future__ import annotations

import pytest


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


@pytest.mark.django_db
def test_readyz_says_which_dependency_failed(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    data = response.json()
    assert data["status"] == "unavailable"
    assert data["checks"]["database"] == "ok"
    assert data["checks"]["redis"].startswith("error: ConnectionError")


@pytest.mark.django_db
def test_readyz_database_down(client, monkeypatch):
    from sync import health

    def broken() -> None:
        raise RuntimeError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "error: RuntimeError: connection refused",
        "redis": "ok",
    }


def test_probes_need_no_auth_and_reject_posts(client):
    assert client.post("/healthz").status_code == 405
