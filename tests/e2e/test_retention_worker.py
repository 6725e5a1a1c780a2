"""The retention purge while a real Celery worker keeps ingesting: it removes
exactly the old finished events, in batches, and nothing the worker is
processing or will process (real Postgres, Redis and worker)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from sync import names, queueing, retention
from sync.choices import EventStatusChoices as Status
from sync.models import Event
from tests.e2e.conftest import post, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_purging_while_the_worker_ingests_removes_only_old_finished_events(provider, celery_worker):
    now = timezone.now()
    old = [
        Event(
            cloudprovider=provider,
            key=f"old-{n}",
            status=Status.PROCESSED,
            body={},
            received_at=now - timedelta(days=20),
            processed_at=now - timedelta(days=20),
        )
        for n in range(3000)
    ]
    waiting = [
        Event(
            cloudprovider=provider,
            key=f"waiting-{n}",
            status=Status.QUEUED,
            body={"message_id": f"waiting-{n}", "event_type": "demo"},
            received_at=now - timedelta(days=100),
            attempts=1,
        )
        for n in range(40)
    ]
    Event.objects.bulk_create(old + waiting)
    waiting_ids = list(
        Event.objects.filter(key__startswith="waiting-").values_list("pk", flat=True)
    )

    def producer() -> None:  # new messages, one body of 5 each, while the purge runs
        client = Client()
        for n in range(0, 300, 5):
            post(
                client,
                provider,
                [{"message_id": f"new-{n + i}", "event_type": "demo"} for i in range(5)],
            )

    thread = threading.Thread(target=producer)
    thread.start()
    queueing.send_task(names.REPLAY, event_ids=waiting_ids)  # old events being processed now
    run = retention.purge(batch=100)
    thread.join(60)

    done = (Status.PROCESSED, Status.IGNORED)
    wait_for(
        lambda: Event.objects.filter(key__startswith="new-", status__in=done).count() == 300,
        timeout=60,
    )
    wait_for(
        lambda: Event.objects.filter(pk__in=waiting_ids, status__in=done).count() == 40, timeout=60
    )
    assert run.removed["events"] == 3000 and run.batches >= 30
    assert not Event.objects.filter(key__startswith="old-").exists()
    assert Event.objects.filter(cloudprovider=provider).count() == 340
