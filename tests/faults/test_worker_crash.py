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

from tests.faults.inbox import (
    compare_inventories,
    figures,
    inbox_state,
    inventory,
    summarize_diff,
    wait_final,
)
from tests.faults.scenario import (
    drain_estimate,
    drain_stream,
    env_float,
    redelivery_bound,
    reference_inventory,
    report,
    single_bodies,
    wait_budget,
    wait_for_progress,
)
from tests.faults.traffic import post_all

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]


def test_worker_sigkill_mid_drain(stack):
    messages, _ = drain_stream()
    keys = {m.key for m in messages}
    provider = stack.add_provider("worker-crash")
    bound = redelivery_bound(stack)
    limit = env_float("FAULTS_REDELIVERY_LIMIT", 180)

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
    state, waited, why = wait_final(stack.pg, provider.pk, keys, budget, stack.redis)
    state = state or inbox_state(stack.pg, provider.pk)

    fig = figures("worker-sigkill", answers, state, keys)
    fig.recovery_s = (time.monotonic() - t_kill) if why == "all final" else None
    fig.notes.update({
        "killed_pid": worker_pid, "final_at_kill": done,
        "unacked_at_kill": backlog_at_kill.get("unacked", 0),
        "redelivery_bound_s": f"{bound:.0f}", "wait": f"{waited:.0f}s/{budget:.0f}s:{why}",
    })
    diff = compare_inventories(inventory(stack.pg, provider.pk),
                               reference_inventory(stack, "drain-reference", messages))
    fig.notes["inventory"] = summarize_diff(diff)
    line = report(fig)

    assert bound <= limit, f"redelivery bound {bound:.0f}s is above {limit:.0f}s: {line}"
    assert why == "all final", f"not every event final within {budget:.0f}s: {line}"
    assert (fig.lost, fig.dead, fig.stuck, fig.failed, fig.duplicated) == (0, 0, 0, 0, 0), line
    assert state.total_rows == len(messages), line
    assert not diff, f"inventory differs from the in-order reference: {diff}"
