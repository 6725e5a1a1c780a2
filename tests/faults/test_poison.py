"""Scenario 4 (issue 10): poison bodies mixed with good traffic.

Each malformed notification (``events.poison_messages``: NUL characters,
lone surrogates, invalid UTF-8, 1,000-level nesting, 100 KB strings, wrong
types, bad dates, negative sizes, 1e400 and 400-digit numbers, a bad IP) is
sent alone and inside a batch ``[good, poison, good]``, shuffled in with
good single notifications. Each bad one must end *failed* with a reason or
be refused with 400 (1,000-level nesting: 400, the issue says so); every
good one in an accepted body must be processed; nothing lost or stuck; no
500; and the inventory must equal a reference fed only the accepted good
notifications (a poison leaves no trace).
"""

from __future__ import annotations

import random

import pytest

from tests.faults.events import batch_body, nova_stream, poison_messages
from tests.faults.harness import FINAL_STATUSES
from tests.faults.inbox import Figures
from tests.faults.scenario import env_int, judge, settle
from tests.faults.traffic import post_all

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]


def test_poison_alone_and_in_batches(stack):
    alone = poison_messages("poison-alone", first_host=100_000)
    batched = poison_messages("poison-batch", first_host=200_000)
    n_good = max(env_int("FAULTS_POISON_GOOD", 60), 2 * len(batched) + 10)
    good = nova_stream(n_good, n_good, "poison-good")  # one create per host: order-free
    provider = stack.add_provider("poison")

    by_key = {m.key: m for m in good}
    bodies: list[tuple[bytes, tuple[str, ...]]] = []
    pool = list(good)
    for p in batched:
        left, right = pool.pop(), pool.pop()
        body = b"[" + left.text.encode() + b"," + p.body() + b"," + right.text.encode() + b"]"
        bodies.append((body, (left.key, p.key, right.key)))
    bodies += [(p.body(), (p.key,)) for p in alone]
    bodies += [(batch_body([m]) if i % 2 else m.text.encode(), (m.key,))
               for i, m in enumerate(pool)]
    random.Random(10).shuffle(bodies)

    answers = post_all(stack.web_port, provider.pk, provider.secret, bodies, threads=8)
    poison_keys = {p.key for p in alone + batched}
    accepted = answers.accepted_keys()
    good_keys = accepted & set(by_key)

    def complete(state) -> bool:
        """Every accepted message has a final row: good ones under their own
        key, poison under its own or (unstorable as sent) one of the
        product's, and nothing left queued."""
        finals = sum(1 for s, _, _ in state.rows.values() if s in FINAL_STATUSES)
        return finals >= len(accepted) and finals == state.total_rows

    state, waited, why = settle(stack, provider, good_keys, 300, satisfied=complete)
    rows = state.rows

    # Poison recorded under a key of the product's own (e.g. a hash of the
    # raw text) still counts, as failed rows nobody else explains.
    known = set(by_key) | poison_keys
    unexplained_failed = [k for k, (s, e, _) in rows.items() if k not in known and s == "failed"]
    status_of = {a.keys: a.status for a in answers.items}
    outcomes: dict[str, str] = {}
    problems: list[str] = []
    spare = len(unexplained_failed)
    for p, where in [(p, "alone") for p in alone] + [(p, "batch") for p in batched]:
        body_keys = next(k for k in status_of if p.key in k)
        status = status_of[body_keys]
        label = f"{p.name}/{where}"
        if status == 400:
            outcomes[label] = "400"
            continue
        if p.must_400 or status != 202:
            outcomes[label] = f"HTTP {status}"
            problems.append(f"{label}: HTTP {status} (want {'400' if p.must_400 else '202/400'})")
            continue
        row = rows.get(p.key)
        if row is None and spare:
            spare -= 1
            outcomes[label] = "failed (own key)"
            continue
        if row is None:
            outcomes[label] = "LOST"
            problems.append(f"{label}: accepted, no inbox row")
        elif row[0] != "failed" or not row[1].strip():
            outcomes[label] = f"{row[0]}"
            problems.append(f"{label}: ended {row[0]!r} (error {row[1][:80]!r}), want failed + reason")
        else:
            outcomes[label] = "failed"
    good_accepted = [m for m in good if m.key in accepted]
    for m in good_accepted:
        row = rows.get(m.key)
        if row is None or row[0] not in ("processed", "ignored"):
            problems.append(f"good {m.key} (body {status_of[next(k for k in status_of if m.key in k)]})"
                            f": {row[0] if row else 'LOST'} {row[1][:120] if row else ''}")

    fig = Figures("poison", sent=len(good) + len(poison_keys), answers=answers.statuses(),
                  accepted=len(accepted))
    fig.lost = sum(1 for k in accepted if k not in rows) - (len(unexplained_failed) - spare)
    fig.stuck = sum(1 for k in accepted if k in rows and rows[k][0] not in FINAL_STATUSES)
    fig.failed = sum(1 for k in accepted if rows.get(k, ("",))[0] == "failed")
    fig.dead = sum(1 for k in accepted if rows.get(k, ("",))[0] == "dead")
    fig.statuses = state.status_counts()
    fig.notes.update({
        "good_accepted": f"{len(good_accepted)}/{len(good)}",
        "good_not_processed": sum(1 for m in good_accepted
                                  if rows.get(m.key, ("",))[0] not in ("processed", "ignored")),
        "wait": f"{waited:.0f}s:{why}",
    })
    diff, line = judge(stack, provider, fig, "poison-reference", good_accepted)
    print("[faults] poison outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))

    assert set(answers.statuses()) <= {202, 400}, f"answers: {line}"
    assert not problems, f"{len(problems)} problems: " + "; ".join(problems[:40]) + f"\n{line}"
    assert fig.lost == 0 and fig.stuck == 0, line
    assert not diff, f"inventory differs from the good-only reference: {diff}"
