"""Apply the stored plan of a dry run or of a run held back by the mass-delete guard."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sync import errors, runs
from sync.management.commands.cloudsync_sync import summary
from sync.models import SyncRun


class Command(BaseCommand):
    help = "Apply a sync run's stored plan (dry run or needs-approval)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", type=int, help="SyncRun id")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not SyncRun.objects.filter(pk=opts["run"]).exists():
            raise CommandError(f"no sync run #{opts['run']}")
        try:
            run = runs.apply_stored_plan(opts["run"], triggered_by="cloudsync_apply_plan")
        except errors.PlanNotApplicable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(summary(run))
