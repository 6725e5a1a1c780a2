"""Each Celery queue is bound under its own routing key, and a real worker
receives tasks on both (events via the endpoint's raw LPUSH, runs via Celery)."""

from __future__ import annotations

import pytest
import redis
from celery.signals import task_postrun
from kombu import Producer

from project.celery import EXCHANGE
from project.celery import app as celery_app
from tests.broker import purge
from tests.e2e.conftest import post, wait_for

QUEUES = ("cloudsync.events", "cloudsync.sync")


def test_queue_declarations_have_their_own_routing_keys() -> None:
    queues = celery_app.amqp.queues
    assert sorted(queues) == sorted(QUEUES)
    for name in QUEUES:
        assert queues[name].routing_key == name  # kombu's Redis list is this name
        assert queues[name].exchange.name == EXCHANGE.name
        assert queues[name].exchange.type == "direct"
    # what the worker banner prints
    banner = queues.format().splitlines()
    assert any("cloudsync.sync" in line and "key=cloudsync.sync" in line for line in banner)
    assert any("cloudsync.events" in line and "key=cloudsync.events" in line for line in banner)


@pytest.mark.django_db
def test_publishing_through_the_exchange_reaches_only_the_bound_queue() -> None:
    purge()
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        for name in QUEUES:  # what a worker declares on start
            celery_app.amqp.queues[name].bind(channel).declare()
        producer = Producer(channel, exchange=EXCHANGE)
        producer.publish({"probe": 1}, routing_key="cloudsync.sync")
        assert (client.llen("cloudsync.events"), client.llen("cloudsync.sync")) == (0, 1)
        producer.publish({"probe": 2}, routing_key="cloudsync.events")
        assert (client.llen("cloudsync.events"), client.llen("cloudsync.sync")) == (1, 1)
    purge()


def test_celery_routes_runs_and_events_to_their_lists() -> None:
    for task, queue in [
        ("sync.tasks.ingest", "cloudsync.events"),
        ("sync.tasks.replay", "cloudsync.events"),
        ("sync.tasks.run_sync", "cloudsync.sync"),
        ("sync.tasks.apply_plan", "cloudsync.sync"),
        ("sync.tasks.sync_all", "cloudsync.sync"),
    ]:
        route = celery_app.amqp.router.route({}, task)
        assert route["queue"].name == queue
        assert route["queue"].routing_key == queue


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_receives_tasks_on_both_queues(client, provider, celery_worker) -> None:
    seen: list[tuple[str, str | None]] = []

    def record(sender=None, task=None, **kwargs) -> None:
        seen.append((task.name, (task.request.delivery_info or {}).get("routing_key")))

    task_postrun.connect(record, weak=False)
    try:
        post(client, provider, {"message_id": "queue-probe", "event_type": "probe"})
        celery_app.send_task("sync.tasks.sync_all", kwargs={"kind": "catch_up"})
        wait_for(lambda: len(seen) >= 2)
    finally:
        task_postrun.disconnect(record)
    assert sorted(seen) == [
        ("sync.tasks.ingest", "cloudsync.events"),
        ("sync.tasks.sync_all", "cloudsync.sync"),
    ]
