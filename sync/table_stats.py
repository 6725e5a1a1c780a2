"""The planner's statistics of inventory tables a full sync fills.

A full sync from an empty (or much smaller) inventory inserts rows chunk by
chunk, each chunk committed. Postgres plans each chunk's lookups (references
by external id, the rows to lock) from the table's statistics, which
autovacuum refreshes only after a minute and a 10 % change: until then a
table that grew from nothing to 100,000 rows is planned as nearly empty, and
every lookup of a 1,000-change chunk scans it whole (measured at 100k
servers: 60 ms per chunk and growing, 6 s of the run for one statement;
the listing digests' lookup, joined as a hash over the whole digest table,
4 s).
``Growth`` analyzes a table once the run has created as many rows in it as
it had when last analyzed (at least ``MIN_ROWS``): a doubling schedule, a
few ANALYZEs per run, each ~0.1 s, never on a run that changes little.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction

from sync.apply import MODEL_FOR_KIND, ApplyResult, Outcome
from sync.changes import Kind, Source
from sync.models import CloudHostIP, ListingDigest

__all__ = ["MIN_ROWS", "Growth"]

MIN_ROWS = 20_000

log = logging.getLogger(__name__)


class Growth:
    """Created rows per table over one run; ``after`` each committed chunk."""

    def __init__(self) -> None:
        self.created: dict[type[models.Model], int] = defaultdict(int)
        self.analyzed: dict[type[models.Model], float] = {}  # rows at the last ANALYZE
        self.runs: list[str] = []  # the tables analyzed, in order

    def after(self, result: ApplyResult) -> None:
        if connection.vendor != "postgresql":
            return  # (SQLite plans these lookups by their unique index anyway)
        for change, outcome in result.outcomes:
            if outcome == Outcome.CREATED:
                self.created[MODEL_FOR_KIND[change.kind]] += 1
                if change.kind in (Kind.HOST, Kind.HOST_IP):  # (their address rows)
                    self.created[CloudHostIP] += 1
                # what a listing creates gets its digest (sync.apply.digests),
                # and each chunk's digest lookup joins that table too
                if change.source == Source.FULL_SYNC and settings.CLOUDSYNC_LISTING_DIGESTS:
                    self.created[ListingDigest] += 1
        for model, n in self.created.items():
            if n < MIN_ROWS:
                continue
            if model not in self.analyzed:
                self.analyzed[model] = _estimated_rows(model)
            if n >= self.analyzed[model]:
                self._analyze(model)

    def _analyze(self, model: type[models.Model]) -> None:
        """ANALYZE, unless the table is being vacuumed or analyzed already
        (SKIP_LOCKED: never wait on that); a failure is logged, not the run's."""
        table = model._meta.db_table
        self.created[model] = 0
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"ANALYZE (SKIP_LOCKED) {connection.ops.quote_name(table)}")
        except DatabaseError as exc:
            log.warning("could not analyze %s during a full sync: %s", table, exc)
            return
        self.analyzed[model] = _estimated_rows(model)
        self.runs.append(table)


def _estimated_rows(model: type[models.Model]) -> float:
    """The table's row count as the planner knows it (0: never analyzed)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table]
        )
        row = cursor.fetchone()
    return max(float(row[0]), 0.0) if row else 0.0
