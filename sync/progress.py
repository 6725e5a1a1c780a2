"""A running sync's progress, as it streams: what ``SyncRun.progress`` holds.

Shape (shared with the status page)::

    {"phase": "listing" | "applying" | "finishing" | "done",
     "kinds": {"<kind>": {"pages": int, "seen": int, "applied": int, "done": bool}},
     "seen": int, "applied": int, "attempt": int, "updated_at": "<iso>"}

``seen`` counts objects the listing returned, ``applied`` those applied to
the inventory. Drivers stream objects, not pages: a *page* here is a chunk
of the run's work (up to ``sync.reconcile.CHUNK`` listed objects, counted
for each kind it holds). A kind is ``done`` once the listing moved on to
another kind (listings stream kind after kind), and every kind is done when
the listing ended.

Progress never goes backwards while a run is polled. A run retried after a
temporary error (or taken over from a dead worker) lists again from the
start: its ``attempt`` goes up by one, and every counter shows the highest
figure reached by any attempt (the bar stays where it was until the new
attempt passes it) rather than dropping back to zero; a ``done`` kind stays
done. When the run ends (phase ``done``), its figures are the ones of the
attempt that completed: what was actually listed (lower than the bar only if
the cloud shrank between attempts). A split run's parts are merged the same
way, kind by kind, highest figures kept (a retried part lists its kinds
again).

``Progress`` is updated by the thread applying the run (once per chunk) and
read by the thread that writes it to the database (``sync.runs``), which
does so at most once per ``CLOUDSYNC_RUN_PROGRESS_SECONDS`` in its own short
UPDATE, apart from the run's transactions.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sync.changes import Change

__all__ = ["PHASES", "Progress", "describe", "merged"]

PHASES = ("listing", "applying", "finishing", "done")


COUNTERS = ("pages", "seen", "applied")


class Progress:
    """One executor's progress of a run (a whole run, or one part of a split run).

    ``stored``: the run's progress as earlier attempts left it; this attempt
    counts from zero (``kinds``) but shows no figure below those
    (``as_json``) until the run is done."""

    def __init__(self, stored: Mapping[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self.phase = "listing"
        self.kinds: dict[str, dict[str, Any]] = {}
        self.version = 0  # bumped on every change: the writer skips unchanged states
        self._current: str | None = None
        stored = stored or {}
        self._floor: dict[str, Any] = dict(stored.get("kinds") or {})
        self.attempt = int(stored.get("attempt") or (1 if self._floor else 0)) + 1

    def _kind(self, kind: str) -> dict[str, Any]:
        entry = self.kinds.get(kind)
        if entry is None:
            entry = self.kinds[kind] = {"pages": 0, "seen": 0, "applied": 0, "done": False}
        return entry

    def listed(self, chunk: Iterable[Change]) -> None:
        """A chunk came out of the listing (about to be applied)."""
        counts = Counter(change.kind.value for change in chunk)
        with self._lock:
            for kind, n in counts.items():  # in the order the listing gave them
                if self._current is not None and self._current != kind:
                    self.kinds[self._current]["done"] = True
                self._current = kind
                entry = self._kind(kind)  # a done kind listed again (interleaved) stays done
                entry["pages"] += 1
                entry["seen"] += n
            self.phase = "applying"
            self.version += 1

    def applied(self, chunk: Iterable[Change]) -> None:
        """A chunk was applied; the listing goes on."""
        counts = Counter(change.kind.value for change in chunk)
        with self._lock:
            for kind, n in counts.items():
                self._kind(kind)["applied"] += n
            self.phase = "listing"
            self.version += 1

    def set_phase(self, phase: str) -> None:
        with self._lock:
            if phase in ("finishing", "done"):
                for entry in self.kinds.values():
                    entry["done"] = True
            self.phase = phase
            self.version += 1

    def as_json(self) -> dict[str, Any]:
        """What to record: while running, at least what earlier attempts
        showed; once done, this attempt's own figures."""
        with self._lock:
            kinds = {kind: dict(entry) for kind, entry in self.kinds.items()}
            phase = self.phase
        if phase != "done":
            kinds = _highest(self._floor, kinds)
        return _shape(phase, kinds, self.attempt)


def _highest(
    stored: Mapping[str, Mapping[str, Any]], mine: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Kind by kind, the higher of each counter; done if either is done."""
    out = {kind: dict(entry) for kind, entry in stored.items()}
    for kind, entry in mine.items():
        old = out.get(kind)
        if old is None:
            out[kind] = dict(entry)
            continue
        out[kind] = {
            **{name: max(int(old.get(name, 0)), int(entry.get(name, 0))) for name in COUNTERS},
            "done": bool(old.get("done")) or bool(entry.get("done")),
        }
    return out


def _shape(phase: str, kinds: Mapping[str, Mapping[str, Any]], attempt: int) -> dict[str, Any]:
    return {
        "phase": phase,
        "kinds": {kind: dict(entry) for kind, entry in sorted(kinds.items())},
        "seen": sum(int(entry.get("seen", 0)) for entry in kinds.values()),
        "applied": sum(int(entry.get("applied", 0)) for entry in kinds.values()),
        "attempt": max(attempt, 1),
        "updated_at": datetime.now(UTC).isoformat(),
    }


def merged(stored: Mapping[str, Any] | None, mine: Mapping[str, Any], *,
           phase: str | None = None) -> dict[str, Any]:
    """A split run's progress: ``stored`` (what the parts wrote so far) with
    ``mine`` (one part's) merged in kind by kind (parts list distinct kinds;
    a retried part lists its kinds again: the higher figures stay); totals
    recomputed. ``phase`` overrides (else the stored one, or listing)."""
    kinds = _highest((stored or {}).get("kinds") or {}, mine.get("kinds") or {})
    phase = phase or (stored or {}).get("phase") or "listing"
    if phase in ("finishing", "done"):
        kinds = {kind: {**entry, "done": True} for kind, entry in kinds.items()}
    attempt = max(int((stored or {}).get("attempt") or 1), int(mine.get("attempt") or 1))
    return _shape(phase, kinds, attempt)


def describe(progress: Mapping[str, Any] | None) -> str:
    """One line for people: ``applying: 12000 listed, 11000 applied (host 9000/8000, 9 pages)``;
    the kind shown is the one being listed (the last not done), else the last."""
    if not progress or not progress.get("phase"):
        return "-"
    kinds = progress.get("kinds") or {}
    line = f"{progress['phase']}: {progress.get('seen', 0)} listed, {progress.get('applied', 0)} applied"
    current = [kind for kind, entry in kinds.items() if not entry.get("done")] or list(kinds)
    if current and progress["phase"] not in ("finishing", "done"):
        entry = kinds[current[-1]]
        line += (f" ({current[-1]} {entry.get('seen', 0)}/{entry.get('applied', 0)}, "
                 f"{entry.get('pages', 0)} pages)")
    return line
