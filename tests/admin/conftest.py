"""Admin test fixtures: a registered fake driver and captured task publishes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.messages import get_messages

from sync.drivers.registry import reset_registry

FAKE = "fake.configured"


@pytest.fixture
def fake_driver(settings):
    settings.CLOUDSYNC_DRIVERS = ["tests.test_drivers.ConfiguredDriver"]
    reset_registry()
    yield FAKE
    reset_registry()


@dataclass
class FakeTask:
    """Stands in for a Celery task: records apply_async calls, publishes nothing."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def apply_async(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(kwargs.get("kwargs") or {})


@pytest.fixture
def published(monkeypatch):
    """Every task the admin can queue, captured by name."""
    import sync.tasks

    tasks = {name: FakeTask() for name in ("run_sync", "apply_plan", "replay_events")}
    for name, task in tasks.items():
        monkeypatch.setattr(sync.tasks, name, task, raising=False)
    return tasks


def messages_of(response) -> list[str]:
    return [str(m.message) for m in get_messages(response.wsgi_request)]
