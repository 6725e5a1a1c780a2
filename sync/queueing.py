"""Publishing webhook bodies to the Celery broker, for the request path.

The endpoint's cost is dominated by publishing (DESIGN §6: Celery's
``apply_async`` halves the endpoint's throughput). So the request path writes
the Celery protocol-2 message that ``sync.tasks.ingest`` expects straight
onto the queue's Redis list, the way kombu's Redis transport does, with one
shared redis-py connection pool: one LPUSH per request and nothing else.
Workers consume it as an ordinary Celery task (Flower shows it as such).

Publishing never retries: a producer that gets a 503 retries itself, which
is better than holding a web worker while Redis is down.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from datetime import datetime
from functools import lru_cache

import redis
from redis.exceptions import RedisError

from project.celery import app as celery_app

__all__ = ["BrokerUnavailable", "INGEST_QUEUE", "enqueue_ingest"]

INGEST_TASK = "sync.tasks.ingest"
INGEST_QUEUE = "cloudsync.events"
_ORIGIN = f"cloudsync-web@{socket.gethostname()}:{os.getpid()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class BrokerUnavailable(Exception):
    """The broker did not accept the message."""


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )


def _message(task_id: str, kwargs: dict, kwargsrepr: str) -> bytes:
    body = json.dumps([[], kwargs, _EMBED]).encode()
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": INGEST_TASK,
                "id": task_id,
                "shadow": None,
                "eta": None,
                "expires": None,
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": [None, None],
                "root_id": task_id,
                "parent_id": None,
                "argsrepr": "()",
                "kwargsrepr": kwargsrepr,
                "origin": _ORIGIN,
                "ignore_result": True,
                "stamped_headers": None,
                "stamps": {},
            },
            "properties": {
                "correlation_id": task_id,
                "reply_to": "",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": INGEST_QUEUE},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        },
        separators=(",", ":"),
    ).encode()


def enqueue_ingest(provider_id: int, body: str, received_at: datetime) -> str:
    """Queue one webhook body for ``sync.tasks.ingest``; returns the task id."""
    task_id = str(uuid.uuid4())
    kwargs = {"provider_id": provider_id, "body": body, "received_at": received_at.isoformat()}
    # Flower shows kwargsrepr: never the body (it may be large or sensitive).
    kwargsrepr = f"{{'provider_id': {provider_id}, 'body': '<{len(body)} chars>'}}"
    try:
        _client(celery_app.conf.broker_url).lpush(INGEST_QUEUE, _message(task_id, kwargs, kwargsrepr))
    except (RedisError, OSError) as exc:
        raise BrokerUnavailable(str(exc)) from exc
    return task_id
