"""Scenario 3 (issue 10): Redis SIGKILLed and restarted during ingest.

While producers POST the stream and the worker consumes it, redis-server
(AOF, ``appendfsync always``) is SIGKILLed at 30 % of the answers and
started again on the same directory after FAULTS_REDIS_DOWN_S (default 3 s).
Every answer must be 202 or 503 (a 202 promises the body is in Redis); the
producer re-sends its 503s; then every accepted event must be processed
exactly once within the redelivery bound.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.faults.inbox import figures
from tests.faults.scenario import (
    accepted_bodies,
    assert_exactly_once,
    drain_estimate,
    env_float,
    judge,
    processed_count,
    redelivery_bound,
    redelivery_limit,
    retry_until_accepted,
    settle,
    single_bodies,
    start_drain,
    wait_budget,
)
from tests.faults.traffic import Answers, post_while

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]


def test_redis_sigkill_and_restart_during_ingest(stack):
    drain = start_drain(stack, "redis-restart")
    messages, keys, provider, bodies = drain.messages, drain.keys, drain.provider, drain.bodies()
    bound = redelivery_bound(stack)
    limit = redelivery_limit()
    down_s = env_float("FAULTS_REDIS_DOWN_S", 3)

    started = time.monotonic()
    answers = Answers()
    stop = threading.Event()
    poster = post_while(stack.web_port, provider.pk, provider.secret, single_bodies(messages),
                        stop, answers, threads=4, pause=0.01)
    deadline = time.monotonic() + 120
    while len(answers.items) < 0.3 * len(messages) and poster.is_alive():
        assert time.monotonic() < deadline, "posting stalled before the fault"
        time.sleep(0.02)
    t_kill = time.monotonic()
    stack.redis.kill()
    time.sleep(down_s)
    stack.redis.start()
    t_up = time.monotonic()
    poster.join(300)
    ingest_answers = Answers(list(answers.items))
    done = processed_count(stack, provider)

    retried = retry_until_accepted(stack, provider, bodies, accepted_bodies(ingest_answers))
    every = Answers(ingest_answers.items + retried.items)
    budget = wait_budget(min(bound, limit), 1.5 * drain_estimate(
        done, time.monotonic() - started, len(messages) - done))
    state, waited, why = settle(stack, provider, keys, budget)

    fig = figures("redis-sigkill", every, state, keys)
    fig.recovery_s = (time.monotonic() - t_up) if why == "all final" else None
    fig.notes.update({
        "ingest_answers": dict(ingest_answers.statuses()),
        "answers_while_down": dict(Answers([a for a in ingest_answers.items
                                            if t_kill <= a.at <= t_up]).statuses()),
        "retried_posts": len(retried.items), "redelivery_bound_s": f"{bound:.0f}",
        "journal_put_back": stack.journal_put_back(),
        "wait": f"{waited:.0f}s/{budget:.0f}s:{why}",
    })
    diff, line = judge(stack, provider, fig, "drain-reference", messages)

    assert set(ingest_answers.statuses()) <= {202, 503}, f"answers during ingest: {line}"
    assert fig.accepted == len(messages), f"not every event accepted after retries: {line}"
    assert why == "all final", f"not every event final within {budget:.0f}s: {line}"
    assert_exactly_once(fig, state, diff, len(messages), line)
