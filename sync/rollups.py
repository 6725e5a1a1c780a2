"""Writing the per-period event counts the status page reads (``EventRollup``).

The worker counts what a batch did in a ``Tally`` (events received, and
events that reached an outcome, with their received→processed lag for
processed and ignored ones) and writes it with ``write``: one upsert
(``INSERT … ON CONFLICT DO UPDATE SET count = count + excluded.count``) per
batch, inside the transaction that records the events or their outcome, so
the counts are exactly what committed: a batch rolled back (and retried, or
halved to isolate a culprit) counts nothing, a redelivered body counts only
what it newly inserted.

Lags are kept as bucket counts: ``LAG_BOUNDS`` are 1-1.5-2-3-5-7 steps per
decade from 10 ms to 100,000 s (beyond: the overflow bucket). A percentile
read from them (``sync.status``) is the bound of the bucket holding that
rank: "p99 ≤ 0.5 s" means at least 99 % of the events were final within
0.5 s, exact to the bucket (at most 50 % above the true value).
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from datetime import UTC, datetime

from django.db import connections

from sync.models import EventRollup

__all__ = ["LAGGED", "LAG_BOUNDS", "OUTCOMES", "PERIOD", "Tally", "lag_bucket", "period_of", "purge",
           "write"]

OUTCOMES = ("received", "processed", "ignored", "failed", "dead")
LAGGED = frozenset({"processed", "ignored"})  # outcomes counted per lag bucket
LAG_BOUNDS: tuple[float, ...] = (
    *(round(m * 10.0**e, 3) for e in range(-2, 5) for m in (1, 1.5, 2, 3, 5, 7)),
    100_000.0,
)
NO_LAG = -1
PERIOD = 300  # seconds per rollup row (the finest step the status page offers)


def lag_bucket(seconds: float) -> int:
    """Index of the first bound at or above ``seconds`` (``len(LAG_BOUNDS)``:
    above the last bound)."""
    return bisect.bisect_left(LAG_BOUNDS, max(seconds, 0.0))


def period_of(at: datetime) -> datetime:
    """The start of the ``PERIOD`` (UTC) ``at`` falls in."""
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % PERIOD, UTC)


class Tally:
    """Counts of one batch, keyed (provider, period, outcome, lag bucket)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[int, datetime, str, int]] = Counter()

    def __bool__(self) -> bool:
        return bool(self.counts)

    def add(self, provider_id: int, outcome: str, at: datetime,
            received_at: datetime | None = None, n: int = 1) -> None:
        """``n`` events of the provider reached ``outcome`` at ``at``
        (``received``: were received at ``at``). A processed or ignored
        event's lag is ``at - received_at``."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown rollup outcome {outcome!r}")
        bucket = NO_LAG
        if outcome in LAGGED and received_at is not None:
            bucket = lag_bucket((at - received_at).total_seconds())
        self.counts[(provider_id, period_of(at), outcome, bucket)] += n


def write(tally: Tally, using: str = "default") -> None:
    """Add the tally to the rollups: one statement (none if it is empty).
    Keys are sorted, so concurrent batches lock shared rows in one order."""
    if not tally:
        return
    rows = sorted(tally.counts.items())
    connection = connections[using]
    qn = connection.ops.quote_name
    table = qn(EventRollup._meta.db_table)
    columns = ", ".join(qn(c) for c in ("cloudprovider_id", "period", "outcome", "lag_bucket",
                                        "count"))
    conflict = (f"ON CONFLICT ({qn('cloudprovider_id')}, {qn('period')}, {qn('outcome')}, "
                f"{qn('lag_bucket')}) DO UPDATE SET {qn('count')} = {table}.{qn('count')} + "
                f"excluded.{qn('count')}")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            data = json.dumps([{"p": p, "m": m.isoformat(), "o": o, "b": b, "n": n}
                               for (p, m, o, b), n in rows])
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT r.p, r.m, r.o, r.b, r.n "
                "FROM jsonb_to_recordset(%s::jsonb) AS r(p bigint, m timestamptz, o text, "
                f"b smallint, n bigint) ORDER BY 1, 2, 3, 4 {conflict}", [data])
        else:
            marks = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
            params: list = []
            for (p, m, o, b), n in rows:
                params += [p, connection.ops.adapt_datetimefield_value(m), o, b, n]
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {marks} {conflict}", params)


def purge(before: datetime) -> int:
    """Drop rollup rows older than ``before`` (the sweeper keeps
    ``CLOUDSYNC_ROLLUP_KEEP_DAYS``); returns how many."""
    deleted, _ = EventRollup.objects.filter(period__lt=period_of(before)).delete()
    return deleted
