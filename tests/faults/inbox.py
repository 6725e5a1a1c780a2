"""What the private database says: inbox outcomes, figures, inventory.

"Exactly once" in this suite means: one inbox row per distinct message key,
in a final status, and the inventory equal to that of a reference provider
that received every accepted message once, in order, with no fault.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg

from tests.faults.harness import FINAL_STATUSES, PostgresCluster, RedisServer
from tests.faults.traffic import Answers

__all__ = [
    "Figures",
    "InboxState",
    "compare_inventories",
    "inbox_state",
    "inventory",
    "wait_final",
]

GOOD_FINAL = ("processed", "ignored")
# Natural key of each synced table; FKs to these are compared by it.
NATURAL = {
    "sync_cloudproject": "project_id",
    "sync_cloudflavor": "flavor_id",
    "sync_cloudimage": "image_id",
    "sync_cloudhost": "host_id",
    "sync_cloudport": "port_id",
}
TABLES = (*NATURAL, "sync_cloudhostip")
# Bookkeeping that legitimately depends on timing or on which of several
# equal-versioned writers came last; everything else must match.
IGNORED_COLUMNS = frozenset({
    "id", "cloudprovider_id", "created_at", "modified_at", "last_seen_at", "last_event_at",
    "last_synced_by", "field_versions",
})


@dataclass
class InboxState:
    """Inbox rows of one provider: key -> (status, error, attempts)."""

    rows: dict[str, tuple[str, str, int]]
    total_rows: int

    def status_counts(self) -> Counter:
        return Counter(status for status, _, _ in self.rows.values())


def inbox_state(pg: PostgresCluster, provider_id: int) -> InboxState:
    rows = pg.query(
        "SELECT key, status, error, attempts FROM sync_event WHERE cloudprovider_id = %s",
        (provider_id,),
    )
    return InboxState({r["key"]: (r["status"], r["error"], r["attempts"]) for r in rows}, len(rows))


@dataclass
class Figures:
    """The figures line every scenario prints (issue 10's table columns)."""

    scenario: str
    sent: int = 0  # distinct message keys posted
    answers: Counter = field(default_factory=Counter)  # HTTP status -> POSTs
    accepted: int = 0  # distinct keys in a 202'd body
    lost: int = 0  # accepted, but no inbox row
    duplicated: int = 0  # inbox rows for keys never sent
    stuck: int = 0  # accepted, row not in a final status
    dead: int = 0
    failed: int = 0
    recovery_s: float | None = None
    statuses: Counter = field(default_factory=Counter)
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        other = sum(n for s, n in self.answers.items() if s not in (202, 503))
        others = ",".join(f"{s}:{n}" for s, n in sorted(self.answers.items())
                          if s not in (202, 503)) or "-"
        rec = "n/a" if self.recovery_s is None else f"{self.recovery_s:.1f}"
        notes = " ".join(f"{k}={v}" for k, v in self.notes.items())
        return (
            f"[faults] {self.scenario}: sent={self.sent} 202={self.answers.get(202, 0)} "
            f"503={self.answers.get(503, 0)} other={other} ({others}) accepted={self.accepted} "
            f"lost={self.lost} duplicated={self.duplicated} stuck={self.stuck} dead={self.dead} "
            f"failed={self.failed} recovery_s={rec} inbox={dict(self.statuses)} {notes}"
        ).rstrip()


def figures(scenario: str, answers: Answers, state: InboxState, sent_keys: set[str],
            accepted: set[str] | None = None) -> Figures:
    accepted = answers.accepted_keys() if accepted is None else accepted
    rows = state.rows
    fig = Figures(scenario, sent=len(sent_keys), answers=answers.statuses(),
                  accepted=len(accepted))
    fig.lost = sum(1 for k in accepted if k not in rows)
    fig.stuck = sum(1 for k in accepted if k in rows and rows[k][0] not in FINAL_STATUSES)
    fig.duplicated = sum(1 for k in rows if k not in sent_keys)
    fig.dead = sum(1 for k in accepted if k in rows and rows[k][0] == "dead")
    fig.failed = sum(1 for k in accepted if k in rows and rows[k][0] == "failed")
    fig.statuses = state.status_counts()
    return fig


def wait_final(pg: PostgresCluster, provider_id: int, keys: set[str], timeout: float,
               redis: RedisServer | None = None, hopeless_after: float = 30.0,
               interval: float = 1.0,
               satisfied: Callable[[InboxState], bool] | None = None,
               ) -> tuple[InboxState | None, float, str]:
    """Poll until every key has a row in a final status (or ``satisfied``
    says the state is complete), or ``timeout``.

    Returns (last state, seconds waited, why it stopped). It gives up early
    only when the result can no longer change: keys without an inbox row,
    nothing at all left in the broker (queues and unacked hash empty) and
    no progress for ``hopeless_after`` seconds -- a message that is in
    neither the inbox nor the broker is gone."""
    start = time.monotonic()
    last: InboxState | None = None
    last_sig: tuple | None = None
    last_change = start
    while True:
        now = time.monotonic()
        try:
            state = inbox_state(pg, provider_id)
        except psycopg.Error:
            state = None  # the database is (still) down
        if state is not None:
            last = state
            final = sum(1 for k in keys if state.rows.get(k, ("",))[0] in FINAL_STATUSES)
            if final == len(keys) and (satisfied is None or satisfied(state)):
                return state, now - start, "all final"
            sig = (final, state.total_rows, tuple(sorted(state.status_counts().items())))
            if sig != last_sig:
                last_sig, last_change = sig, now
            missing = any(k not in state.rows for k in keys) or (
                satisfied is not None and final == len(keys) and not satisfied(state))
            if missing and redis is not None and now - last_change > hopeless_after:
                try:
                    backlog = redis.broker_backlog()
                except Exception:
                    backlog = {"unknown": 1}
                if not any(backlog.values()):
                    return state, now - start, (
                        f"gave up: no progress for {now - last_change:.0f}s, broker empty, "
                        "messages missing from the inbox"
                    )
        if now - start > timeout:
            try:
                left = {k: v for k, v in redis.broker_backlog().items() if v} if redis else {}
            except Exception as exc:  # the broker is (still) down
                left = {"unreadable": repr(exc)}
            return last, now - start, f"timeout after {timeout:.0f}s, broker holds {left}"
        time.sleep(interval)


# -- inventory ------------------------------------------------------------------


def _fks(conn: psycopg.Connection) -> dict[tuple[str, str], str]:
    rows = conn.execute(
        "SELECT c.conrelid::regclass::text AS tbl, a.attname AS col, "
        "c.confrelid::regclass::text AS ref FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
        "WHERE c.contype = 'f' AND c.conrelid::regclass::text LIKE 'sync_%%'"
    ).fetchall()
    return {(r["tbl"], r["col"]): r["ref"] for r in rows}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def inventory(pg: PostgresCluster, provider_id: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Every inventory row of a provider, normalized: table -> identity ->
    row. FKs become the referenced row's natural key, ``deleted_at`` a
    ``deleted`` flag, bookkeeping columns are dropped."""
    with pg.connect() as conn:
        fks = _fks(conn)
        ids: dict[str, dict[int, str]] = {}
        raw: dict[str, list[dict[str, Any]]] = {}
        for table, natural in NATURAL.items():
            rows = conn.execute(
                f"SELECT * FROM {table} WHERE cloudprovider_id = %s", (provider_id,)
            ).fetchall()
            raw[table] = rows
            ids[table] = {r["id"]: r[natural] for r in rows}
        host_ids, port_ids = list(ids["sync_cloudhost"]), list(ids["sync_cloudport"])
        raw["sync_cloudhostip"] = conn.execute(
            "SELECT * FROM sync_cloudhostip WHERE host_id = ANY(%s) OR port_id = ANY(%s)",
            (host_ids, port_ids),
        ).fetchall()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for table in TABLES:
        normalized: dict[str, dict[str, Any]] = {}
        for row in raw[table]:
            clean: dict[str, Any] = {}
            for col, value in row.items():
                if col in IGNORED_COLUMNS:
                    continue
                ref = fks.get((table, col))
                if ref is not None:
                    clean[col] = None if value is None else ids.get(ref, {}).get(value, f"?{value}")
                elif col == "deleted_at":
                    clean["deleted"] = value is not None
                else:
                    clean[col] = _plain(value)
            if table in NATURAL:
                ident = str(clean[NATURAL[table]])
            else:  # addresses: no identity of their own
                ident = json.dumps(clean, sort_keys=True, default=str)
                n = 2
                while ident in normalized:  # the same address twice is a difference too
                    ident = f"{ident}#{n}"
                    n += 1
            normalized[ident] = clean
        out[table] = normalized
    return out


def compare_inventories(got: dict[str, dict[str, dict[str, Any]]],
                        want: dict[str, dict[str, dict[str, Any]]],
                        examples: int = 3) -> dict[str, Any]:
    """Per table: rows missing, extra and different (with a few examples).
    An empty dict means identical."""
    report: dict[str, Any] = {}
    for table in TABLES:
        g, w = got.get(table, {}), want.get(table, {})
        missing = sorted(set(w) - set(g))
        extra = sorted(set(g) - set(w))
        differ = []
        for ident in sorted(set(g) & set(w)):
            if g[ident] != w[ident]:
                fields = {k: (g[ident].get(k), w[ident].get(k))
                          for k in set(g[ident]) | set(w[ident]) if g[ident].get(k) != w[ident].get(k)}
                differ.append((ident, fields))
        if missing or extra or differ:
            report[table] = {
                "rows": len(g), "reference_rows": len(w),
                "missing": len(missing), "extra": len(extra), "different": len(differ),
                "examples": {"missing": missing[:examples], "extra": extra[:examples],
                             "different": differ[:examples]},
            }
    return report


def summarize_diff(report: dict[str, Any]) -> str:
    """One line per differing table (for the figures/notes and assertion text)."""
    return "; ".join(
        f"{t}: {r['rows']} rows vs {r['reference_rows']} (missing {r['missing']}, "
        f"extra {r['extra']}, different {r['different']})"
        for t, r in report.items()
    ) or "identical"
