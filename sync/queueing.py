"""Publishing work to the broker, for the request path.

One place owns how the endpoint talks to Redis so the webhook view stays a
view. Publishing never retries here: a producer that gets a 503 retries
itself, which is better than holding a web worker while Redis is down.
"""

from __future__ import annotations

from datetime import datetime

from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

__all__ = ["BrokerUnavailable", "enqueue_ingest"]


class BrokerUnavailable(Exception):
    """The broker did not accept the message."""


def enqueue_ingest(provider_id: int, body: str, received_at: datetime) -> str:
    """Queue one webhook body for ``sync.tasks.ingest``; returns the task id."""
    from sync.tasks import ingest_task

    try:
        result = ingest_task.apply_async(
            kwargs={
                "provider_id": provider_id,
                "body": body,
                "received_at": received_at.isoformat(),
            },
            retry=False,
        )
    except (OperationalError, RedisError, OSError) as exc:
        raise BrokerUnavailable(str(exc)) from exc
    return result.id
