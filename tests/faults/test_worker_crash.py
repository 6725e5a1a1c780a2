"""Scenario 2 (issue 10): the worker is SIGKILLed mid-drain and restarted.

The whole worker (main process and prefork children: its process group) is
killed at 15 % of the drain and started again at once. Messages the dead
worker had taken but not acknowledged come back when the broker's
visibility timeout passes, so every event must be final within that bound
(read from the services' settings) plus the time to drain the rest -- and
the bound itself must be minutes (FAULTS_REDELIVERY_LIMIT, default 180 s),
not hours. Exactly once: one inbox row per message, all processed, and the
inventory equals the in-order reference.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.inbox import figures
from tests.faults.scenario import (
    assert_exactly_once,
    drain_estimate,
    judge,
    redelivery_bound,
    redelivery_limit,
    settle,
    single_bodies,
    start_drain,
    wait_budget,
    wait_for_progress,
)
from tests.faults.traffic import post_all

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]


def test_worker_sigkill_mid_drain(stack):
    drain = start_drain(stack, "worker-crash")
    messages, keys, provider = drain.messages, drain.keys, drain.provider
    bound = redelivery_bound(stack)
    limit = redelivery_limit()

    started = time.monotonic()
    answers = post_all(stack.web_port, provider.pk, provider.secret, single_bodies(messages))
    assert answers.statuses() == {202: len(messages)}, f"no fault yet, yet {answers.statuses()}"
    done = wait_for_progress(stack, provider, len(messages) * 15 // 100, timeout=600)
    t_kill = time.monotonic()
    worker_pid = stack.worker.pid
    stack.worker.kill()  # SIGKILL to the worker's process group
    backlog_at_kill = stack.redis.broker_backlog()
    stack.start_worker()

    # Wait for the bound as configured, but never longer than the limit the
    # issue sets: a bound of hours fails below either way.
    budget = wait_budget(min(bound, limit),
                         1.5 * drain_estimate(done, t_kill - started, len(messages) - done))
    state, waited, why = settle(stack, provider, keys, budget)

    fig = figures("worker-sigkill", answers, state, keys)
    fig.recovery_s = (time.monotonic() - t_kill) if why == "all final" else None
    fig.notes.update({
        "killed_pid": worker_pid, "final_at_kill": done,
        "unacked_at_kill": backlog_at_kill.get("unacked", 0),
        "redelivery_bound_s": f"{bound:.0f}", "wait": f"{waited:.0f}s/{budget:.0f}s:{why}",
        "journal_put_back": stack.journal_put_back(),
    })
    diff, line = judge(stack, provider, fig, "drain-reference", messages)

    assert bound <= limit, f"redelivery bound {bound:.0f}s is above {limit:.0f}s: {line}"
    assert why == "all final", f"not every event final within {budget:.0f}s: {line}"
    assert_exactly_once(fig, state, diff, len(messages), line)
