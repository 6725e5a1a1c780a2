"""Steps the fault scenarios share: knobs, reference provider, reporting."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from tests.faults.events import Message, batch_body, nova_stream
from tests.faults.harness import FINAL_STATUSES, Provider, Stack
from tests.faults.inbox import (
    Figures,
    InboxState,
    compare_inventories,
    inbox_state,
    inventory,
    summarize_diff,
    wait_final,
)
from tests.faults.traffic import Answers, post_all, post_one

__all__ = [
    "FIGURES",
    "Drain",
    "assert_exactly_once",
    "env_float",
    "env_int",
    "redelivery_limit",
    "start_drain",
    "feed_in_order",
    "processed_count",
    "accepted_bodies",
    "drain_stream",
    "drain_estimate",
    "judge",
    "redelivery_bound",
    "reference_inventory",
    "report",
    "retry_until_accepted",
    "settle",
    "single_bodies",
    "wait_budget",
    "wait_for_progress",
]

FIGURES: list[str] = []  # printed again in the terminal summary (conftest)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def report(fig: Figures) -> str:
    line = fig.line()
    FIGURES.append(line)
    print(line)
    return line


def single_bodies(messages: Sequence[Message]) -> list[tuple[bytes, tuple[str, ...]]]:
    return [(m.text.encode(), (m.key,)) for m in messages]


def processed_count(stack: Stack, provider: Provider) -> int:
    rows = stack.pg.query(
        "SELECT count(*) AS n FROM sync_event WHERE cloudprovider_id = %s AND status = ANY(%s)",
        (provider.pk, list(FINAL_STATUSES)),
    )
    return rows[0]["n"]


def redelivery_bound(stack: Stack) -> float:
    """How long the broker may hold a dead worker's message before handing it
    out again: the Redis transport's ``visibility_timeout`` as the services
    are configured, plus the interval at which unacked messages are checked
    (kombu's ``unacked_restore_interval`` when set)."""
    options = stack.settings_value("CELERY_BROKER_TRANSPORT_OPTIONS") or {}
    timeout = float(options.get("visibility_timeout", 3600))  # kombu's default
    return timeout + float(options.get("unacked_restore_interval", 10))


def redelivery_limit() -> float:
    """The most a redelivery bound may be (FAULTS_REDELIVERY_LIMIT, default
    180 s): minutes, as the issue sets, not hours."""
    return env_float("FAULTS_REDELIVERY_LIMIT", 180)


def drain_estimate(done: int, seconds: float, remaining: int) -> float:
    """Seconds the worker needs for ``remaining`` messages at the rate it
    showed so far (machines differ a lot; CI shares two cores)."""
    rate = max(done, 1) / max(seconds, 0.1)
    return remaining / rate


def wait_budget(*parts: float) -> float:
    """Sum of the parts plus slack, capped by FAULTS_MAX_WAIT (default 600 s)."""
    return min(sum(parts) + 30.0, env_float("FAULTS_MAX_WAIT", 600.0))


def wait_for_progress(stack: Stack, provider: Provider, count: int, timeout: float) -> int:
    """Block until ``count`` inbox rows of the provider are final (mid-drain
    point for a fault); returns the count seen."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        seen = processed_count(stack, provider)
        if seen >= count:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"drain did not reach {count} final events in {timeout:.0f}s "
                         f"(at {seen}):\n{stack.logs_summary()}")


def retry_until_accepted(stack: Stack, provider: Provider,
                         bodies: dict[tuple[str, ...], bytes], accepted: set[tuple[str, ...]],
                         attempts: int = 30, pause: float = 1.0) -> Answers:
    """What a producer does after a 503 (or no answer, or never getting to
    send): send the body again later, until it is accepted. Returns the
    answers to these retries."""
    retried = Answers()
    pending = set(bodies) - accepted
    for _ in range(attempts):
        if not pending:
            break
        batch = post_all(stack.web_port, provider.pk, provider.secret,
                         [(bodies[k], k) for k in sorted(pending)], threads=4)
        retried.extend(batch)
        pending = {a.keys for a in batch.items if a.status != 202}
        if pending:
            time.sleep(pause)
    return retried


def accepted_bodies(answers: Answers) -> set[tuple[str, ...]]:
    return {a.keys for a in answers.items if a.status == 202}


def feed_in_order(stack: Stack, name: str, messages: Sequence[Message], batch: int = 200,
                  timeout: float = 180) -> Provider:
    """A reference provider fed every message once, in emission order, with
    no fault: batches in sequence, each one finished before the next is
    sent (a batch is applied in its own order by one task)."""
    provider = stack.add_provider(name)
    for i in range(0, len(messages), batch):
        chunk = list(messages[i:i + batch])
        answer = post_one(stack.web_port, provider.pk, provider.secret, batch_body(chunk),
                          [m.key for m in chunk], timeout=60)
        assert answer.status == 202, f"reference batch refused: {answer.status} {answer.body[:300]!r}"
        state, _, why = wait_final(stack.pg, provider.pk, {m.key for m in chunk}, timeout,
                                   interval=0.2)
        assert why == "all final", f"reference provider {name}: {why} ({state and state.status_counts()})"
    states = inbox_state(stack.pg, provider.pk).status_counts()
    assert set(states) <= {"processed", "ignored"}, f"reference provider {name}: {dict(states)}"
    return provider


_REFERENCES: dict[tuple[str, ...], dict] = {}


def reference_inventory(stack: Stack, name: str, messages: Sequence[Message]) -> dict:
    """The normalized inventory of a reference provider fed ``messages`` in
    order. Normalized rows carry no database ids, so one session computes it
    once per distinct stream and every module's cluster compares with it."""
    key = tuple(m.key for m in messages)
    if key not in _REFERENCES:
        _REFERENCES[key] = inventory(stack.pg, feed_in_order(stack, name, messages).pk)
    return _REFERENCES[key]


@cache
def drain_stream() -> tuple[list[Message], int]:
    """The stream scenarios 1-3 drain: FAULTS_N messages posted up front plus
    FAULTS_OUTAGE_POSTS more (posted during the Postgres outage in scenario
    1); ~8 per host. Returns (messages, FAULTS_N)."""
    n = env_int("FAULTS_N", 2000)
    extra = env_int("FAULTS_OUTAGE_POSTS", 200)
    return nova_stream(n + extra, max(1, (n + extra) // 8), "drain"), n


def settle(stack: Stack, provider: Provider, keys: set[str], timeout: float,
           satisfied: Callable[[InboxState], bool] | None = None) -> tuple[InboxState, float, str]:
    """Wait (``wait_final``, giving up early when the broker is empty) until
    every key of the provider is final, or ``timeout``. Returns the inbox as
    it stands then (read again if the last poll found the database down),
    the seconds waited and why the wait stopped."""
    state, waited, why = wait_final(stack.pg, provider.pk, keys, timeout, stack.redis,
                                    satisfied=satisfied)
    return state or inbox_state(stack.pg, provider.pk), waited, why


def judge(stack: Stack, provider: Provider, fig: Figures, reference: str,
          messages: Sequence[Message]) -> tuple[dict, str]:
    """Compare the provider's inventory with that of the reference provider
    ``reference`` fed ``messages`` in order, note the difference in the
    figures and report them. Returns (difference, report line)."""
    diff = compare_inventories(inventory(stack.pg, provider.pk),
                               reference_inventory(stack, reference, messages))
    fig.notes["inventory"] = summarize_diff(diff)
    return diff, report(fig)


def assert_exactly_once(fig: Figures, state: InboxState, diff: dict, total: int,
                        line: str) -> None:
    """The drain scenarios' verdict: nothing lost, dead, stuck, failed or
    duplicated; one inbox row per message; the in-order inventory."""
    assert (fig.lost, fig.dead, fig.stuck, fig.failed, fig.duplicated) == (0, 0, 0, 0, 0), line
    assert state.total_rows == total, line
    assert not diff, f"inventory differs from the in-order reference: {diff}"


@dataclass
class Drain:
    """The drain stream of scenarios 1-3 and the provider it is sent to."""

    messages: list[Message]
    upfront: int  # FAULTS_N: how many are posted before the fault
    provider: Provider

    @property
    def keys(self) -> set[str]:
        return {m.key for m in self.messages}

    def bodies(self) -> dict[tuple[str, ...], bytes]:
        """Each message's body by its keys (what a producer re-sends)."""
        return {keys: body for body, keys in single_bodies(self.messages)}


def start_drain(stack: Stack, name: str) -> Drain:
    """The drain stream and a fresh provider ``name`` of the stack for it."""
    messages, upfront = drain_stream()
    return Drain(messages, upfront, stack.add_provider(name))
