"""What an ``apply`` reports: the outcome of each change, counted per kind."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sync.changes import Change

__all__ = ["ApplyResult", "Outcome"]


class Outcome:
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    STALE = "stale"


@dataclass
class ApplyResult:
    """What an apply did: counts per kind and outcome, and each change's outcome."""

    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    outcomes: list[tuple[Change, str]] = field(default_factory=list)
    # external id -> {field: [old, new]} per kind, when asked (dry runs, drift reports)
    diffs: dict[str, dict[str, dict[str, list]]] | None = None

    def add(self, change: Change, outcome: str) -> None:
        self.counts[change.kind.value][outcome] += 1
        self.outcomes.append((change, outcome))

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.counts.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {kind: dict(counter) for kind, counter in sorted(self.counts.items())}

    def merge(self, other: ApplyResult) -> None:
        for kind, counter in other.counts.items():
            self.counts[kind].update(counter)
        self.outcomes.extend(other.outcomes)
        if other.diffs and self.diffs is not None:
            for kind, objs in other.diffs.items():
                self.diffs.setdefault(kind, {}).update(objs)
