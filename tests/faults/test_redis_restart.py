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

from tests.faults.inbox import (
    compare_inventories,
    figures,
    inbox_state,
    inventory,
    summarize_diff,
    wait_final,
)
from tests.faults.scenario import (
    accepted_bodies,
    drain_estimate,
    drain_stream,
    env_float,
    processed_count,
    redelivery_bound,
    reference_inventory,
    report,
    retry_until_accepted,
    single_bodies,
    wait_budget,
)
from tests.faults.traffic import Answers, post_while

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]


def test_redis_sigkill_and_restart_during_ingest(stack):
    messages, _ = drain_stream()
    keys = {m.key for m in messages}
    bodies = {keys_: body for body, keys_ in single_bodies(messages)}
    provider = stack.add_provider("redis-restart")
    bound = redelivery_bound(stack)
    limit = env_float("FAULTS_REDELIVERY_LIMIT", 180)
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
    state, waited, why = wait_final(stack.pg, provider.pk, keys, budget, stack.redis)
    state = state or inbox_state(stack.pg, provider.pk)

    fig = figures("redis-sigkill", every, state, keys)
    fig.recovery_s = (time.monotonic() - t_up) if why == "all final" else None
    fig.notes.update({
        "ingest_answers": dict(ingest_answers.statuses()),
        "answers_while_down": dict(Answers([a for a in ingest_answers.items
                                            if t_kill <= a.at <= t_up]).statuses()),
        "retried_posts": len(retried.items), "redelivery_bound_s": f"{bound:.0f}",
        "wait": f"{waited:.0f}s/{budget:.0f}s:{why}",
    })
    diff = compare_inventories(inventory(stack.pg, provider.pk),
                               reference_inventory(stack, "drain-reference", messages))
    fig.notes["inventory"] = summarize_diff(diff)
    line = report(fig)

    assert set(ingest_answers.statuses()) <= {202, 503}, f"answers during ingest: {line}"
    assert fig.accepted == len(messages), f"not every event accepted after retries: {line}"
    assert why == "all final", f"not every event final within {budget:.0f}s: {line}"
    assert (fig.lost, fig.dead, fig.stuck, fig.failed, fig.duplicated) == (0, 0, 0, 0, 0), line
    assert state.total_rows == len(messages), line
    assert not diff, f"inventory differs from the in-order reference: {diff}"
