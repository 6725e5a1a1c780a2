"""Following a run's progress from a command: a bar on a terminal (rich),
plain lines otherwise (logs, cron, pipes).

The watcher reads ``SyncRun.progress`` from the database in a thread of its
own, so it shows the run the same way whether this process executes it or a
worker does.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import IO, Any

from django.db import DatabaseError, connection
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import SyncRun
from sync.progress import describe

__all__ = ["RunWatcher"]

POLL_SECONDS = 0.5
LINE_SECONDS = 5.0  # plain lines: when the line changed, at most this often


def _previous_total(run: SyncRun) -> int | None:
    """Objects the provider's last finished full sync listed: the bar's total."""
    last = (SyncRun.objects.filter(cloudprovider_id=run.cloudprovider_id, kind=RunKind.FULL)
            .exclude(pk=run.pk).exclude(status__in=(RunStatus.RUNNING, RunStatus.FAILED))
            .order_by("-started_at").values_list("progress", flat=True).first())
    seen = (last or {}).get("seen")
    return int(seen) if seen else None


class RunWatcher:
    """``with RunWatcher(run, out, tty=...):`` around the run's execution."""

    def __init__(self, run: SyncRun, out: IO[str], *, tty: bool,
                 line_seconds: float = LINE_SECONDS) -> None:
        self.run_id = run.pk
        self.out = out
        self.tty = tty
        self.line_seconds = line_seconds
        self.total = _previous_total(run) if run.kind == RunKind.FULL else None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name=f"run-{run.pk}-watch", daemon=True)
        self.bar: Bar | None = None
        self.task: Any = None
        self.last_line = ""
        self.last_line_at = 0.0

    def __enter__(self) -> RunWatcher:
        if self.tty:
            self.bar = Bar(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                console=Console(file=self.out, force_terminal=True), transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(f"run #{self.run_id}", total=self.total, detail="starting")
        self.thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop.set()
        self.thread.join()
        self._show(self._read(), final=True)
        if self.bar is not None:
            self.bar.stop()

    def _read(self) -> dict[str, Any] | None:
        try:
            return SyncRun.objects.filter(pk=self.run_id).values_list("progress", flat=True).first()
        except DatabaseError:
            connection.close()
            return None

    def _watch(self) -> None:
        try:
            while not self.stop.wait(POLL_SECONDS):
                self._show(self._read())
        finally:
            connection.close()

    def _show(self, progress: dict[str, Any] | None, *, final: bool = False) -> None:
        if progress is None:
            return
        line = describe(progress)
        if self.bar is not None:
            applied = int(progress.get("applied") or 0)
            total = self.total if self.total and self.total >= applied else None
            if final and progress.get("phase") == "done":
                total = applied
            self.bar.update(self.task, completed=applied, total=total, detail=line)
            return
        now = time.monotonic()
        if line == "-" or line == self.last_line:
            return
        if final or now - self.last_line_at >= self.line_seconds:
            self.out.write(f"run #{self.run_id} {line}\n")
            self.out.flush()
            self.last_line, self.last_line_at = line, now
