"""Scenario 5 (issue 10): a duplicate storm.

FAULTS_STORM_N notifications (default 500, five per host: create, update
without ports, power off, interface attach, power on -- or delete, for every
tenth host) are each sent
FAULTS_STORM_COPIES times (default 5), shuffled, from 8 threads. The inbox
must hold one row per notification, all processed, and every inventory
table (hosts, ports, addresses, flavors, images, projects) must equal that of
a reference provider that received each notification once, in order.
"""

from __future__ import annotations

import random

import pytest

from tests.faults.events import nova_stream
from tests.faults.inbox import figures
from tests.faults.scenario import env_int, judge, settle
from tests.faults.traffic import post_all

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]


def test_duplicate_storm_matches_in_order_reference(stack):
    n = env_int("FAULTS_STORM_N", 500)
    copies = env_int("FAULTS_STORM_COPIES", 5)
    messages = nova_stream(n, max(1, n // 5), "storm")
    keys = {m.key for m in messages}
    provider = stack.add_provider("storm")

    bodies = [(m.text.encode(), (m.key,)) for m in messages for _ in range(copies)]
    random.Random(5).shuffle(bodies)
    answers = post_all(stack.web_port, provider.pk, provider.secret, bodies, threads=8)
    state, waited, why = settle(stack, provider, keys, 600)

    fig = figures("duplicate-storm", answers, state, keys)
    fig.notes.update({"copies": copies, "inbox_rows": state.total_rows,
                      "wait": f"{waited:.0f}s:{why}"})
    diff, line = judge(stack, provider, fig, "storm-reference", messages)

    assert answers.statuses() == {202: n * copies}, line
    assert state.total_rows == n, line
    assert set(state.status_counts()) <= {"processed", "ignored"}, line
    assert (fig.lost, fig.stuck, fig.duplicated) == (0, 0, 0), line
    assert not diff, f"inventory differs from the in-order reference: {diff}"
