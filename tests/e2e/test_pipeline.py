"""POST -> 202 -> Redis -> real Celery worker -> database."""

from __future__ import annotations

import pytest

from sync.choices import EventStatusChoices as Status
from sync.models import Event
from tests.e2e.conftest import post, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]



def test_event_is_processed_by_the_worker(client, provider, celery_worker):
    post(client, provider, {"message_id": "msg-1", "event_type": "anything", "payload": {"a": 1}})
    event = wait_for(lambda: Event.objects.filter(cloudprovider=provider, status=Status.PROCESSED).first())
    assert event.key == "msg-1"
    assert event.event_type == "anything"
    assert event.body == {"message_id": "msg-1", "event_type": "anything", "payload": {"a": 1}}
    assert event.processed_at is not None and event.attempts == 1
    provider.refresh_from_db()
    assert provider.last_event_processed_at is not None


def test_batch_of_n_is_n_events_and_duplicates_are_one(client, provider, celery_worker):
    batch = [{"message_id": f"b-{i}", "event_type": "x"} for i in range(25)]
    assert post(client, provider, batch)["queued"] == 25
    post(client, provider, batch[0])  # the same message again, separately
    post(client, provider, {"no": "id", "n": 1})  # no id: keyed by body hash
    post(client, provider, {"n": 1, "no": "id"})  # same body, other key order
    wait_for(lambda: Event.objects.filter(cloudprovider=provider, status=Status.PROCESSED).count() == 26)
    wait_for(lambda: Event.objects.filter(cloudprovider=provider).count() == 26)
    assert Event.objects.filter(cloudprovider=provider, key="b-0").count() == 1
