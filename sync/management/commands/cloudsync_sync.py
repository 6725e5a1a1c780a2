"""Run a full sync (or dry run, or catch-up) of one provider now, in this process.

While it runs, its progress (``SyncRun.progress``) is shown as a bar on a
terminal, and as plain lines otherwise (at most one per ``--progress-every``
seconds, 5 by default)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sync import errors, runs
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.drivers.base import DriverError
from sync.management.commands._common import provider_arg
from sync.management.commands._progress import RunWatcher


class Command(BaseCommand):
    help = "Full sync of a provider (id or name); prints the run summary. Exit 1 on failure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("provider", help="provider id or name")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--dry-run", action="store_true", help="store the plan, apply nothing")
        group.add_argument("--catch-up", action="store_true", help="only changes since the last run")
        parser.add_argument("--no-progress", action="store_true",
                            help="no progress bar or lines while the run executes")
        parser.add_argument("--progress-every", type=float, default=5.0, metavar="SECONDS",
                            help="without a terminal: a progress line at most this often "
                                 "(default 5)")

    def handle(self, *args: Any, **opts: Any) -> None:
        provider = provider_arg(opts["provider"])
        kind = RunKind.DRY_RUN if opts["dry_run"] else RunKind.CATCH_UP if opts["catch_up"] else RunKind.FULL
        try:
            runs.check_can_start(provider, kind)
            run = runs.claim_run(provider, kind, triggered_by="cloudsync_sync")
        except (errors.RunRefused, errors.RunInProgress) as exc:
            raise CommandError(f"{provider}: {exc}") from exc
        out = self.stdout._out
        watch = not opts["no_progress"]
        tty = watch and callable(getattr(out, "isatty", None)) and out.isatty()
        try:
            if watch:
                with RunWatcher(run, out, tty=tty, line_seconds=opts["progress_every"]):
                    run = runs.execute_run(run.pk)
            else:
                run = runs.execute_run(run.pk)
        except DriverError as exc:  # temporary errors: no Celery retry here, fail the run
            runs.fail_run_by_id(run.pk, exc)
            run.refresh_from_db()
        failed = run.status == RunStatus.FAILED
        # The error is reported once, on stderr, when the run failed.
        self.stdout.write(summary(run, with_error=not failed))
        if failed:
            raise CommandError(f"sync run #{run.pk} failed: {run.error}")


def summary(run: Any, *, with_error: bool = True) -> str:
    """The run in a few lines: status, times, drift, counts per kind, plan, error."""
    lines = [
        f"run #{run.pk} {run.kind} of {run.cloudprovider}: {run.status}",
        f"  started {run.started_at:%Y-%m-%d %H:%M:%S} finished {run.finished_at:%Y-%m-%d %H:%M:%S}"
        if run.finished_at else f"  started {run.started_at:%Y-%m-%d %H:%M:%S}",
        f"  drift healed: {run.drift_healed}",
    ]
    for kind, counts in sorted((run.counts or {}).items()):
        lines.append(f"  {kind}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if run.plan:
        lines.append(f"  stored plan: {len(run.plan)} changes (apply with cloudsync_apply_plan {run.pk})")
    if run.error and with_error:
        lines.append(f"  {run.error}")
    return "\n".join(lines)


__all__ = ["Command", "summary"]
