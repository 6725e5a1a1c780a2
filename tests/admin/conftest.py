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
    """What was queued for one task name (the kwargs of each message)."""

    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def published(monkeypatch):
    """Every task the admin queues, captured by task name instead of sent:
    services queue work only through ``sync.queueing.send_task``."""
    from sync import names, queueing

    tasks = {"run_sync": FakeTask(), "apply_plan": FakeTask(), "replay_events": FakeTask()}
    by_name = {names.RUN_SYNC: tasks["run_sync"], names.APPLY_PLAN: tasks["apply_plan"],
               names.REPLAY: tasks["replay_events"]}

    def send_task(name: str, *, countdown: float | None = None, **kwargs: Any) -> None:
        by_name[name].calls.append(kwargs)

    monkeypatch.setattr(queueing, "send_task", send_task)
    return tasks


def messages_of(response) -> list[str]:
    return [str(m.message) for m in get_messages(response.wsgi_request)]
