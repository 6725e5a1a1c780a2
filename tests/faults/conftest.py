"""Fault-injection suite (issue 10): one private stack per test module.

These tests start real processes (redis-server, a Postgres cluster,
gunicorn, a Celery worker and beat) and break them, so they run only when
asked for: ``pytest -m faults -p no:xdist`` (``make test-faults``). The
120 s outage variant is also marked ``slow`` and runs only when the marker
expression names ``slow`` (``-m "faults and slow"``) or FAULTS_SLOW=1.

Knobs (environment): FAULTS_N (events drained in scenarios 1-3, default
2000) and FAULTS_OUTAGE_POSTS (200 more, posted during the outage);
FAULTS_OUTAGE_S (15) / FAULTS_SLOW_OUTAGE_S (120); FAULTS_REDIS_DOWN_S (3);
FAULTS_REDELIVERY_LIMIT (180: the most a redelivery bound may be);
FAULTS_STORM_N (500) / FAULTS_STORM_COPIES (5); FAULTS_POISON_GOOD (60);
FAULTS_MAX_WAIT (600: cap of any wait for recovery); FAULTS_KEEP_TMP=1
keeps each stack's directory and logs; FAULTS_SVC_<NAME>=value passes
<NAME>=value to the services (default: production settings);
FAULTS_PG_BINDIR picks a PostgreSQL installation.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.faults.harness import Stack, stack_dir
from tests.faults.scenario import FIGURES

HERE = Path(__file__).resolve().parent


def _in_suite(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


def _names(expr: str, word: str) -> bool:
    return re.search(rf"\b{word}\b", expr) is not None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark this folder's tests ``faults``. Unless the marker expression
    names ``faults`` (or FAULTS=1), leave them out: the main suite runs with
    ``-n 2`` and must not start a Postgres cluster per module per worker.
    When it does, pytest's own ``-m`` filtering decides (``not faults``
    still drops them). ``slow`` variants are skipped unless the expression
    names ``slow`` or FAULTS_SLOW=1."""
    expr = config.getoption("markexpr", "") or ""
    wanted = _names(expr, "faults") or bool(os.environ.get("FAULTS"))
    slow_wanted = _names(expr, "slow") or bool(os.environ.get("FAULTS_SLOW"))
    keep, drop = [], []
    for item in items:
        if not _in_suite(item):
            keep.append(item)
            continue
        item.add_marker(pytest.mark.faults)
        if not wanted:
            drop.append(item)
            continue
        if item.get_closest_marker("slow") and not slow_wanted:
            item.add_marker(pytest.mark.skip(
                reason="slow fault scenario: -m 'faults and slow' or FAULTS_SLOW=1"))
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if FIGURES:
        terminalreporter.section("fault-injection figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pg_template():
    """A migrated, stopped cluster; every module's cluster is a copy of it."""
    with stack_dir("template") as base:
        stack = Stack(base)  # only its Postgres is started
        try:
            stack.pg.initdb()
            stack.migrate()
        finally:
            stack.pg.stop("fast")
        yield stack.pg.data


@pytest.fixture(scope="module")
def stack(pg_template, request):
    """Redis (AOF) + Postgres + gunicorn + worker + beat for one module."""
    name = Path(str(request.node.path)).stem.removeprefix("test_")
    with stack_dir(name) as base:
        s = Stack(base, template=pg_template)
        try:
            s.start_all()
            yield s
        finally:
            if getattr(request.module, "_faults_failed", False):
                print(s.logs_summary())
            s.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and _in_suite(item):
        item.module._faults_failed = True  # noqa: SLF001
