"""Batch consumption of a Celery task's messages, at-least-once.

A task with ``base=BatchTask`` is called with a list of (task id, keyword
arguments) of many messages (``run(batch)``) instead of once per message. The
worker's consumer buffers received messages and hands them to the pool when
``flush_every`` are waiting or every ``flush_interval`` seconds.

This is the design of celery-batches (BSD; formerly ``celery.contrib.batches``),
rewritten here because that package does not declare support for the pinned
Celery, and because its acknowledgement rules lose messages for us: it
acknowledges a batch even when the batch function raised, and never settles
messages whose pool process died. Here:

* ``run(batch)`` returns, per message, whether it is done (acknowledge) or must
  go back to its queue (reject with requeue); a message is acknowledged only
  after ``run`` returned saying it is done, that is after what it carried was
  committed;
* if ``run`` raises, or its pool process dies, every message of the batch is
  rejected with requeue; nothing is acknowledged;
* received/started/succeeded events are sent per batch (Flower shows each
  batch as a task, with its size); task_prerun/postrun signals per message.

Messages with an ETA are run with the next batch (the tasks using this class
are idempotent). The worker's prefetch (``worker_prefetch_multiplier`` ×
concurrency) must exceed ``flush_every`` or batches stay small.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Task, signals, states
from kombu.utils.uuid import uuid

__all__ = ["ACK", "REQUEUE", "BatchTask"]

log = logging.getLogger(__name__)

ACK = "ack"
REQUEUE = "requeue"


def _run_batch(task_name: str, messages: list[tuple[str, dict, dict]]) -> list[str]:
    """Pool side: run the task on a batch of (task id, kwargs, delivery info).

    Module level, so the prefork pool can pickle it. task_prerun/postrun are
    sent per message (with that message's request), as for an ordinary task:
    Django's fixup closes stale connections on them, and observers see each
    message finish (state SUCCESS, or REJECTED when it went back to its queue).
    """
    from celery import current_app

    task = current_app.tasks[task_name]
    for task_id, kwargs, info in messages:
        task.push_request(id=task_id, delivery_info=info, kwargs=kwargs)
        try:
            signals.task_prerun.send(sender=task, task_id=task_id, task=task, args=(),
                                     kwargs=kwargs)
        finally:
            task.pop_request()
    outcome: list[str] | None = None
    task.push_request(id=uuid(), delivery_info=messages[0][2] if messages else None)
    try:
        outcome = task.run([(task_id, kwargs) for task_id, kwargs, _ in messages])
        if len(outcome) != len(messages):
            raise RuntimeError(
                f"{task_name} returned {len(outcome)} outcomes for {len(messages)} messages"
            )
    except Exception:  # every pool must get a verdict (only prefork has error callbacks)
        log.exception("%s: batch of %d raised; all its messages go back to the queue",
                      task_name, len(messages))
        outcome = [REQUEUE] * len(messages)
    finally:
        task.pop_request()
        verdicts = outcome or [None] * len(messages)
        for (task_id, kwargs, info), verdict in zip(messages, verdicts, strict=True):
            state = states.SUCCESS if verdict == ACK else (
                states.REJECTED if verdict == REQUEUE else states.FAILURE)
            task.push_request(id=task_id, delivery_info=info, kwargs=kwargs)
            try:
                signals.task_postrun.send(sender=task, task_id=task_id, task=task, args=(),
                                          kwargs=kwargs, retval=verdict, state=state)
            finally:
                task.pop_request()
    return outcome


class BatchTask(Task):
    """A task run on lists of messages. Subclasses set ``flush_every`` and
    ``flush_interval`` (seconds) and implement ``run(batch) -> [ACK|REQUEUE]``,
    ``batch`` being a list of (task id, keyword arguments)."""

    abstract = True
    typing = False  # called with the kwargs of one message, run with a list
    flush_every = 100
    flush_interval = 0.5
    flush_weight: int | None = None  # also flush once the buffer weighs this much

    def weigh(self, kwargs: dict) -> int:
        """A message's weight towards ``flush_weight`` (e.g. its size), so a
        batch of large messages is cut short and spread over the pool."""
        return 1

    def Strategy(self, task: Task, app: Any, consumer: Any) -> Callable:  # noqa: N802 (Celery's name)
        """The consumer calls the returned handler for every message received.

        Deliberately lighter than Celery's default strategy (no Request object,
        signal or event per message): the consumer process is what limits a
        worker's intake. Events are sent per batch, so Flower shows each batch
        as one ``sync.tasks.ingest`` task with its size."""
        pool = consumer.pool
        eventer = consumer.event_dispatcher
        send_events = bool(eventer and eventer.enabled and task.send_events)
        errors = consumer.connection_errors
        buffer: list[tuple[str, dict, dict, Any, Any, Any]] = []
        weight = [0]
        timer_ref: list[Any] = []
        max_weight = task.flush_weight

        def send(kind: str, batch_id: str, **fields: Any) -> None:
            if send_events:
                try:
                    eventer.send(kind, uuid=batch_id, **fields)
                except Exception as exc:  # monitoring must never stop the consumer
                    log.warning("%s: event %s not sent: %r", task.name, kind, exc)

        def settle(settler: Any, *args: Any) -> None:
            """Acknowledge or reject one message. A message whose channel died
            with its connection (the broker restarted) cannot be settled any
            more: kombu may raise anything there (even AttributeError), and
            the broker hands the message out again after the visibility
            timeout. Never let that escape into the consumer's event loop."""
            try:
                settler(log, errors, *args)
            except Exception as exc:
                log.warning("%s: a message could not be settled (%r); the broker will "
                            "deliver it again", task.name, exc)

        def settle_acks(entries: list[tuple]) -> None:
            """Acknowledge these messages: in one round trip per channel where
            the transport can (``sync.broker_transport.Channel.basic_ack_many``),
            else one by one. If that round trip fails, none is acknowledged:
            the broker delivers them again after the visibility timeout."""
            batches: dict[int, tuple[Any, list[Any]]] = {}
            for entry in entries:
                message = entry[5]
                channel = message.channel
                no_ack = getattr(channel, "no_ack_consumers", None)
                if (hasattr(channel, "basic_ack_many") and not message.acknowledged
                        and not (no_ack and message.delivery_info.get("consumer_tag") in no_ack)):
                    batches.setdefault(id(channel), (channel, []))[1].append(message)
                else:
                    settle(entry[3])
            for channel, batch in batches.values():
                try:
                    channel.basic_ack_many([m.delivery_tag for m in batch])
                except Exception as exc:
                    log.warning("%s: %d messages could not be acknowledged (%r); the broker will "
                                "deliver them again", task.name, len(batch), exc)
                    continue
                for m in batch:
                    m._state = "ACK"  # as kombu's Message.ack leaves it

        def flush() -> None:
            if not buffer:
                if timer_ref:
                    timer_ref.pop().cancel()
                return
            messages = buffer[:]
            buffer.clear()
            weight[0] = 0
            batch_id = uuid()
            started = time.monotonic()
            send("task-received", batch_id, name=task.name, args="()",
                 kwargs=f"{{'batch': {len(messages)}}}", retries=0, root_id=batch_id,
                 parent_id=None)
            send("task-started", batch_id)

            def on_return(outcome: list[str]) -> None:
                requeued = 0
                done = []
                for entry, verdict in zip(messages, outcome, strict=True):
                    if verdict == ACK:
                        done.append(entry)
                    else:
                        settle(entry[4], True)
                        requeued += 1
                settle_acks(done)
                if requeued:
                    send("task-failed", batch_id, exception=f"{requeued} messages requeued",
                         traceback="")
                else:
                    send("task-succeeded", batch_id, result=f"{len(messages)} done",
                         runtime=time.monotonic() - started)

            def on_error(exc: BaseException) -> None:
                log.error("%s: batch of %d failed (%r); all messages requeued",
                          task.name, len(messages), exc)
                for _, _, _, _, reject, _ in messages:
                    settle(reject, True)
                send("task-failed", batch_id, exception=repr(exc), traceback="")

            pool.apply_async(
                _run_batch,
                (task.name, [(task_id, kwargs, info) for task_id, kwargs, info, *_ in messages]),
                callback=on_return,
                error_callback=on_error,
            )

        def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any) -> None:
            try:
                _args, kwargs, _embed = message.decode()
            except Exception as exc:  # not a protocol-2 message of ours: cannot be run
                log.error("%s: undecodable message rejected: %r", task.name, exc)
                settle(reject, False)
                return
            buffer.append((message.headers.get("id"), kwargs, message.delivery_info, ack, reject,
                           message))
            if max_weight is not None:
                weight[0] += task.weigh(kwargs)
            if len(buffer) >= task.flush_every or (max_weight is not None and weight[0] >= max_weight):
                flush()
            elif not timer_ref:
                timer_ref.append(consumer.timer.call_repeatedly(task.flush_interval, flush))

        return handler
