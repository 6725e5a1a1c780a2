"""BatchTask's contract with the broker, through a real worker: a message is
acknowledged only after its batch returned "done"; a batch that raises, or
says "requeue", sends its messages back to the queue, and they run again."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
import redis

from project.celery import app as celery_app
from sync.batching import ACK, REQUEUE, BatchTask
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e

RUNS: list[list[int]] = []
FAILURES = {"raise": 1, "requeue": 1}
LOCK = threading.Lock()


@celery_app.task(base=BatchTask, name="tests.batch.flaky", acks_late=True, flush_every=5,
                 flush_interval=0.1)
def flaky(batch: list) -> list[str]:
    numbers = [kwargs["n"] for _, kwargs in batch]
    with LOCK:
        RUNS.append(numbers)
        if 0 in numbers and FAILURES["raise"]:
            FAILURES["raise"] -= 1
            raise RuntimeError("boom")
    verdicts = []
    for n in numbers:
        with LOCK:
            again = n == 3 and FAILURES["requeue"]
            if again:
                FAILURES["requeue"] -= 1
        verdicts.append(REQUEUE if again else ACK)
    return verdicts


def test_messages_are_acknowledged_only_after_their_batch_succeeded(celery_worker):
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    for n in range(5):
        celery_app.send_task("tests.batch.flaky", kwargs={"n": n}, queue="cloudsync.events")

    def settled() -> bool:
        done = {n for run in RUNS[1:] for n in run}
        return (len(RUNS) >= 3 and {0, 1, 2, 3, 4} <= done and client.llen("cloudsync.events") == 0
                and client.hlen("unacked") == 0)

    wait_for(settled, timeout=20)
    # the first batch raised: every one of its messages ran again
    assert 0 in RUNS[0]
    ran = [n for run in RUNS for n in run]
    assert all(ran.count(n) >= 2 for n in RUNS[0])
    # message 3 asked to be requeued once: it ran once more than the others of its batch
    assert ran.count(3) >= 3 if 3 in RUNS[0] else ran.count(3) >= 2


WEIGHED: list[list[int]] = []


class _Weighed(BatchTask):
    abstract = True

    def weigh(self, kwargs: dict) -> int:
        return kwargs["w"]


@celery_app.task(base=_Weighed, name="tests.batch.weighed", acks_late=True, flush_every=100,
                 flush_weight=10, flush_interval=60)
def weighed(batch: list) -> list[str]:
    with LOCK:
        WEIGHED.append([kwargs["w"] for _, kwargs in batch])
    return [ACK] * len(batch)


def test_a_batch_is_cut_once_its_messages_weigh_enough(celery_worker):
    # given heavy messages (weight 4 each, a batch is cut at weight 10), and a
    # flush interval far beyond the test: only the weight can cut batches
    for _ in range(6):
        celery_app.send_task("tests.batch.weighed", kwargs={"w": 4}, queue="cloudsync.events")
    wait_for(lambda: sum(map(len, WEIGHED)) >= 6, timeout=20)
    assert WEIGHED == [[4, 4, 4], [4, 4, 4]]


PLAIN: list[list[int]] = []


@celery_app.task(base=BatchTask, name="tests.batch.plain", acks_late=True, flush_every=8,
                 flush_interval=60)
def plain(batch: list) -> list[str]:
    with LOCK:
        PLAIN.append([kwargs["n"] for _, kwargs in batch])
    return [ACK] * len(batch)


@pytest.mark.skipif(
    bool(os.environ.get("CLOUDSYNC_TEST_SHARED_REDIS")) or not shutil.which("redis-server"),
    reason="counts commands server-wide: needs this test process's own redis-server")
def test_a_done_batch_is_acknowledged_in_one_round_trip(celery_worker):
    """Each message is recorded unacknowledged as it arrives (kombu: one
    MULTI/EXEC each); the batch's acknowledgements take one more, not one per
    message (sync.broker_transport.Channel.basic_ack_many)."""
    client = redis.Redis.from_url(celery_app.conf.broker_url)

    def execs() -> int:
        return client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)

    before = execs()
    for n in range(8):
        celery_app.send_task("tests.batch.plain", kwargs={"n": n}, queue="cloudsync.events")
    wait_for(lambda: sum(map(len, PLAIN)) >= 8 and client.hlen("unacked") == 0, timeout=20)
    assert PLAIN == [list(range(8))]
    assert execs() - before == 8 + 1
