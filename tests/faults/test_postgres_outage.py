"""Scenario 1 (issue 10): Postgres stopped while the worker drains a backlog.

FAULTS_N events (default 2,000) are queued, the worker drains them, and at
15 % of the way Postgres is stopped (fast shutdown: every session is cut)
for FAULTS_OUTAGE_S seconds (default 15; 120 in the ``slow`` variant). During
the outage FAULTS_OUTAGE_POSTS more events are POSTed: the endpoint must
answer 202 (provider cached) or 503, never 500. After the restart the
producer re-sends what got a 503. Then every event must end processed, none
lost, dead or stuck, and the inventory must equal the in-order reference.
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
    redelivery_bound,
    retry_until_accepted,
    settle,
    single_bodies,
    start_drain,
    wait_budget,
    wait_for_progress,
)
from tests.faults.traffic import Answers, post_all, post_while

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]


def outage_during_drain(stack, name: str, outage_s: float) -> None:
    drain = start_drain(stack, name)
    messages, n, provider, all_keys = drain.messages, drain.upfront, drain.provider, drain.keys
    before, during = messages[:n], messages[n:]
    bodies = drain.bodies()

    started = time.monotonic()
    answers = post_all(stack.web_port, provider.pk, provider.secret, single_bodies(before))
    assert answers.statuses() == {202: n}, f"no fault yet, yet {answers.statuses()}"

    done = wait_for_progress(stack, provider, n * 15 // 100, timeout=600)
    t_stop = time.monotonic()
    stack.pg.stop("fast")

    outage = Answers()
    stop = threading.Event()
    threads = 2
    poster = post_while(stack.web_port, provider.pk, provider.secret, single_bodies(during),
                        stop, outage, threads=threads,
                        pause=max(0.0, outage_s * threads / max(len(during), 1)))
    time.sleep(max(0.0, outage_s - (time.monotonic() - t_stop)))
    stop.set()
    poster.join(60)
    stack.pg.start()
    t_up = time.monotonic()

    retried = retry_until_accepted(stack, provider, bodies,
                                   accepted_bodies(answers) | accepted_bodies(outage))
    every = Answers(answers.items + outage.items + retried.items)
    budget = wait_budget(redelivery_bound(stack),
                         1.5 * drain_estimate(done, t_stop - started, len(messages) - done))
    state, waited, why = settle(stack, provider, all_keys, budget)

    fig = figures(f"postgres-outage-{outage_s:.0f}s", every, state, all_keys)
    fig.recovery_s = (time.monotonic() - t_up) if why == "all final" else None
    fig.notes.update({
        "outage_answers": dict(outage.statuses()),
        "outage_posted": len(outage.items),
        "retried_posts": len(retried.items),
        "final_at_stop": done,
        "wait": f"{waited:.0f}s/{budget:.0f}s:{why}",
    })
    diff, line = judge(stack, provider, fig, "drain-reference", messages)

    assert set(outage.statuses()) <= {202, 503}, f"answers during the outage: {line}"
    assert set(every.statuses()) <= {202, 503}, f"answers: {line}"
    assert fig.accepted == len(messages), f"not every event accepted after retries: {line}"
    assert_exactly_once(fig, state, diff, len(messages), line)


def test_postgres_outage_15s_during_drain(stack):
    outage_during_drain(stack, "pg-outage-15", env_float("FAULTS_OUTAGE_S", 15))


@pytest.mark.slow
def test_postgres_outage_120s_during_drain(stack):
    outage_during_drain(stack, "pg-outage-120", env_float("FAULTS_SLOW_OUTAGE_S", 120))

