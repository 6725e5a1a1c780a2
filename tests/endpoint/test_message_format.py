"""The message sync/queueing.py writes by hand is the one Celery itself would
write for the same task call (pinned Celery/kombu): headers, properties, body
and its encoding. A Celery upgrade that changes the message breaks this test,
not production."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
import redis

from project.celery import app as celery_app
from sync import queueing
from sync.tasks import ingest_task
from tests.broker import purge

# Values that differ per process or per call by design, and one Celery quirk:
# apply_async copies the kwargsrepr option into the properties as well.
PER_CALL = {("headers", "origin"), ("properties", "delivery_tag"), ("properties", "reply_to"),
            ("properties", "kwargsrepr")}


def popped() -> dict:
    raw = redis.Redis.from_url(celery_app.conf.broker_url).rpop(queueing.INGEST_QUEUE)
    assert raw is not None
    return json.loads(raw)


def without_per_call(message: dict) -> dict:
    out = json.loads(json.dumps(message))
    for section, key in PER_CALL:
        out[section].pop(key, None)
    return out


@pytest.mark.parametrize("body", ['{"a": 1}', '[{"message_id": "é\\u0000"}, 2]', "x" * 5000])
def test_the_hand_written_message_equals_celerys_own(body):
    purge()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    task_id = queueing.enqueue_ingest(7, body, when)
    ours = popped()
    ingest_task.apply_async(
        kwargs={"provider_id": 7, "body": body, "received_at": when.isoformat()},
        task_id=task_id, kwargsrepr=ours["headers"]["kwargsrepr"], ignore_result=True,
    )
    celerys = popped()
    # then everything but the per-call values is identical, the body byte for byte
    assert base64.b64decode(ours["body"]) == base64.b64decode(celerys["body"])
    assert without_per_call(ours) == without_per_call(celerys)
    # and the per-call values have the same shape
    assert ours["properties"]["delivery_tag"] and celerys["properties"]["delivery_tag"]
    assert set(ours["headers"]) == set(celerys["headers"])
