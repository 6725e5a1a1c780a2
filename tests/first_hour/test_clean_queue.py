"""``make clean-queue`` (scripts/clean_queue.py): what ``make run`` left queued
in Redis is dropped, unacknowledged messages included; nothing else is touched."""

from __future__ import annotations

import subprocess
import sys

import redis
from django.utils import timezone

from project.celery import app as celery_app
from sync.queueing import enqueue_ingest
from tests.broker import purge
from tests.first_hour.procs import ROOT


def test_clean_queue_drops_cloudsync_messages_only() -> None:
    purge()
    url = celery_app.conf.broker_url
    client = redis.Redis.from_url(url)
    client.set("someone.else", "kept")
    client.lpush("someone.else.queue", "kept")
    enqueue_ingest(1, '{"message_id": "a"}', timezone.now())
    enqueue_ingest(1, '{"message_id": "b"}', timezone.now())
    celery_app.send_task("sync.tasks.run_sync", kwargs={"run_id": 404})
    celery_app.send_task("sync.tasks.run_sync", kwargs={"run_id": 405}, priority=6)
    assert client.llen("cloudsync.events") == 2 and client.llen("cloudsync.sync") == 1

    with celery_app.connection_for_read() as conn:
        channel = conn.default_channel
        held = channel.basic_get("cloudsync.events", no_ack=False)  # a worker's reserved message
        assert held is not None and client.hlen("unacked") == 1
        result = subprocess.run(
            [sys.executable, "scripts/clean_queue.py"],
            cwd=ROOT, env={"REDIS_URL": url, "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == (
            f"cloudsync: dropped 4 queued messages at {url} "
            "(cloudsync.events 2, cloudsync.sync 2)"
        )
    # closing the connection restores what it held from "unacked": nothing now
    queues = [k.decode() for k in client.keys("cloudsync.*")]
    assert queues == []
    assert client.hlen("unacked") == 0
    assert client.get("someone.else") == b"kept" and client.llen("someone.else.queue") == 1
    purge()
