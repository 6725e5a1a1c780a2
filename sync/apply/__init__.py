"""``apply()``: the only code that writes inventory rows.

Events, catch-ups and full syncs all end here. The rules (DESIGN §5):

* idempotent: the same change twice leaves the same state;
* ordered per field: each field remembers the version that set it
  (``field_versions``); a change sets a field only if it is at least as new,
  so an older change never overwrites newer data but may still fill a field
  no newer change has spoken about, and every order of the same changes
  converges to the same row;
* tombstones: a delete always wins and keeps the row (``deleted_at``) with the
  highest version seen; only a full sync listing the object with a newer
  version brings it back. Events never resurrect;
* references (flavor, image, project, host) are external ids; unknown ones
  get placeholder rows, so an event never fails because its flavor is late
  (one table, ``sync.apply.references``, says which field names which model);
* port membership (which host a port is on) is derived from registers too:
  a port's newest claim and its host's newest complete port list
  (``sync.apply.addresses``), so it converges like every other field;
* concurrency: the rows of a batch are locked (``select_for_update``, in pk
  order) inside one short transaction. A row new to the database is built in
  memory (its pk drawn from the table's sequence) and inserted once, with its
  final values (one ``COPY``); if another transaction inserted the same
  object first (the COPY fails on it), the apply is redone once with placeholders inserted
  up front (a concurrent insert is then waited for and read), so two workers
  never race on a create.

Work is done per kind in bulk: a handful of queries per batch, not per change
(``sync.apply.applier``), with hand-written bulk SQL (``sync.apply.bulk``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sync.apply.applier import KIND_ORDER, MODEL_FOR_KIND, KindApplier, insert_shared
from sync.apply.bulk import ConcurrentInsert
from sync.apply.floors import Floors
from sync.apply.history import Cause, CauseArg, HistoryLog
from sync.apply.result import ApplyResult, Outcome
from sync.changes import Change, Kind
from sync.models import CloudProvider

__all__ = ["ApplyResult", "Cause", "Floors", "Outcome", "apply", "MODEL_FOR_KIND"]

CHUNK = 1000

log = logging.getLogger(__name__)


def apply(
    provider: CloudProvider,
    changes: Iterable[Change],
    *,
    now: datetime | None = None,
    keep_outcomes: bool = True,
    record_diffs: bool = False,
    listed_at: datetime | None = None,
    floors: Floors | None = None,
    cause: CauseArg = None,
    record_history: bool = True,
) -> ApplyResult:
    """Apply changes to one provider's inventory in one transaction.

    ``record_diffs`` also reports, per object, each field's old and new value.
    ``listed_at`` (full syncs): when the listing began. A listed object whose
    tombstone is older than that exists after all and comes back, whatever
    the versions say (a cloud's ``updated_at`` may predate our deletion).
    ``floors`` (``sync.apply.floors``): what a complete listing vouches for;
    a full sync passes its own, everything else gets the provider's last.
    ``cause`` (``sync.apply.history``): why these changes are applied, for
    the object history written in the same transaction (one statement for
    the call; unless ``record_history`` is off, or the ``CLOUDSYNC_HISTORY``
    setting): one ``Cause``, or a function giving each change's; by default
    read from each change's source.
    """
    now = now or timezone.now()
    if floors is None:
        floors = Floors.from_json((provider.listing_floors or {}).get("listed"))
    by_kind: dict[Kind, list[Change]] = defaultdict(list)
    for change in changes:
        by_kind[change.kind].append(change)
    # New rows are built in memory and inserted once, at their chunk's
    # flush (``bulk.ensure_rows``). If another transaction inserted one of
    # them first, this apply is redone (rolled back to its savepoint, or its
    # own transaction) the classic way: placeholders inserted up front, where
    # a concurrent insert is waited for and then read.
    for build_new in (True, False):
        result = ApplyResult(diffs={} if record_diffs else None)
        history = (HistoryLog(provider, now, cause)
                   if record_history and settings.CLOUDSYNC_HISTORY else None)
        try:
            with transaction.atomic():
                known = insert_shared(provider, by_kind)
                for kind in KIND_ORDER:
                    group = by_kind.get(kind)
                    for start in range(0, len(group or ()), CHUNK):
                        KindApplier(
                            provider, kind, group[start : start + CHUNK], now, result, listed_at,
                            floors, history, known, build_new=build_new,
                        ).run()
                if history is not None:
                    history.write()
        except ConcurrentInsert as exc:
            if not build_new:  # (never raised without built rows)
                raise
            log.info("provider %s: %s; applying again with placeholders", provider.pk, exc)
            continue
        break
    if not keep_outcomes:
        result.outcomes.clear()
    return result
