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


def _accept_and_take(client, provider, n: int) -> list[bytes]:
    """``n`` accepted messages, all taken off the queue (oldest first)."""
    for i in range(n):
        enqueue_ingest(provider.pk, json.dumps({**MESSAGE, "message_id": f"j-many-{i}"}),
                       timezone.now())
    taken = [client.rpop(INGEST_QUEUE) for _ in range(n)]
    assert client.llen(INGEST_QUEUE) == 0 and None not in taken
    return taken


def _hold_unacknowledged(client, messages: list[bytes]) -> None:
    for message in messages:  # as kombu records a message a worker holds
        client.hset("unacked", json.loads(message)["properties"]["delivery_tag"], message)


@pytest.mark.parametrize("page", [200, 7])
def test_lost_messages_behind_many_held_ones_are_put_back_at_once(client, provider, settings,
                                                                  page):
    """Messages held unacknowledged (through a Redis restart: hundreds) are
    older than a message lost after them; the sweeper looks past them."""
    settings.CLOUDSYNC_JOURNAL_RECOVER_SECONDS = 0
    taken = _accept_and_take(client, provider, 150)
    held, lost = taken[:120], taken[120:]
    _hold_unacknowledged(client, held)
    assert journal.recover(page=page) == 30
    assert sorted(client.lrange(INGEST_QUEUE, 0, -1)) == sorted(lost)
    assert journal.recover(page=page) == 0  # (queued now: left alone)
    assert journal.pending() == 150


def test_at_most_limit_are_put_back_per_call_each_once(client, provider, settings):
    settings.CLOUDSYNC_JOURNAL_RECOVER_SECONDS = 0
    taken = _accept_and_take(client, provider, 40)
    _hold_unacknowledged(client, taken[::2])
    counts = [journal.recover(limit=6, page=5) for _ in range(5)]
    assert counts == [6, 6, 6, 2, 0]
    assert sorted(client.lrange(INGEST_QUEUE, 0, -1)) == sorted(taken[1::2])


def test_a_backlog_of_queued_messages_is_not_searched_entry_by_entry(client, provider, settings):
    """Each queued entry costs an LPOS scan of the queue: a sweep stops once
    ``limit`` of them were found (a lost message left the queue before
    them), instead of scanning for every one of thousands."""
    settings.CLOUDSYNC_JOURNAL_RECOVER_SECONDS = 0
    for i in range(1000):
        enqueue_ingest(provider.pk, json.dumps({**MESSAGE, "message_id": f"j-q-{i}"}),
                       timezone.now())

    def lpos_calls() -> int:
        return int(client.info("commandstats").get("cmdstat_lpos", {}).get("calls", 0))

    before = lpos_calls()
    assert journal.recover(limit=100, page=50) == 0
    assert 100 <= lpos_calls() - before < 1000
