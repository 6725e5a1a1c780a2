"""The journal of accepted messages closes kombu's loss window: a message a
worker popped (BRPOP) but never recorded as unacknowledged — the worker or
Redis killed in between — is put back by the sweeper; a message the inbox
has is forgotten; one still queued or held unacknowledged is left alone."""

from __future__ import annotations

import json

import pytest
import redis
from django.utils import timezone

from project.celery import app as celery_app
from sync import journal, sweeper
from sync.choices import EventStatusChoices as Status
from sync.models import Event
from sync.queueing import INGEST_QUEUE, enqueue_ingest
from tests.broker import purge
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MESSAGE = {"message_id": "j-1", "event_type": "compute.instance.exists", "payload": {}}


@pytest.fixture
def client():
    purge()
    yield redis.Redis.from_url(celery_app.conf.broker_url)
    purge()


def test_an_accepted_message_is_journaled_with_the_queue_and_forgotten_once_recorded(
    client, provider, celery_worker
):
    enqueue_ingest(provider.pk, json.dumps(MESSAGE), timezone.now())
    assert journal.pending() == 1
    wait_for(lambda: Event.objects.filter(key="j-1").exclude(status=Status.QUEUED).exists())
    wait_for(lambda: journal.pending() == 0)


def test_a_message_lost_between_brpop_and_its_bookkeeping_is_put_back(client, provider, settings):
    settings.CLOUDSYNC_JOURNAL_RECOVER_SECONDS = 0
    # given a message popped from the queue and never recorded anywhere else
    enqueue_ingest(provider.pk, json.dumps(MESSAGE), timezone.now())
    stolen = client.rpop(INGEST_QUEUE)
    assert stolen is not None and client.llen(INGEST_QUEUE) == 0
    # when the sweeper runs
    assert sweeper.sweep()["messages_put_back"] == 1
    # then the very same message is queued again, once
    assert client.lrange(INGEST_QUEUE, 0, -1) == [stolen]
    assert sweeper.sweep()["messages_put_back"] == 0
    assert journal.pending() == 1


def test_messages_still_queued_or_unacknowledged_are_left_alone(client, provider, settings):
    settings.CLOUDSYNC_JOURNAL_RECOVER_SECONDS = 0
    enqueue_ingest(provider.pk, json.dumps(MESSAGE), timezone.now())
    assert journal.recover() == 0  # still in the queue
    message = client.rpop(INGEST_QUEUE)
    tag = json.loads(message)["properties"]["delivery_tag"]
    client.hset("unacked", tag, message)  # a worker holds it, as kombu records it
    assert journal.recover() == 0
    assert client.llen(INGEST_QUEUE) == 0
    client.hdel("unacked", tag)  # and once it is in neither, it comes back
    assert journal.recover() == 1 and client.llen(INGEST_QUEUE) == 1
