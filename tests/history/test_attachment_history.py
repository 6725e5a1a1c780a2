"""A port's attachment in history: credited to the change that decided it
(not to whatever changed the row last), and a port first known from a host's
port list is created once, first, whichever statement arrives first."""

from __future__ import annotations

import pytest

from sync.apply import apply
from sync.apply.history import Cause
from sync.changes import Change, Kind, Op, make_version
from sync.choices import HistoryCauseChoices as CauseKind
from sync.models import CloudProvider, HistoryEntry

pytestmark = pytest.mark.django_db


def port(n: int, host: str | None, address: str) -> Change:
    fields = {"host": host, "port_id": "p", "addresses": [{"address": address}]}
    return Change(Kind.HOST_IP, Op.UPSERT, "p", fields, make_version(n))


def host(n: int, **fields) -> Change:
    return Change(Kind.HOST, Op.UPSERT, "h", fields, make_version(n))


def by_event(changes: dict[int, Change]):
    """Each change's cause: inbox event n (the key)."""
    ids = {id(c): n for n, c in changes.items()}
    return lambda change: Cause(CauseKind.EVENT, event_id=ids[id(change)])


def run(provider: CloudProvider, batches: list[dict[int, Change]]) -> None:
    for batch in batches:
        apply(provider, list(batch.values()), cause=by_event(batch))


def history(provider: CloudProvider, kind: str = "host_ip") -> list[tuple]:
    qs = HistoryEntry.objects.filter(cloudprovider=provider, kind=kind).order_by("id")
    return [(e.event_id, e.action, e.changes) for e in qs]


def test_a_move_in_the_same_batch_as_an_address_change_is_the_moving_events(provider):
    run(provider, [{1: port(1, "h1", "10.0.0.1")}])
    # E2 changes the port's addresses, E3 moves it to another host: one batch
    run(provider, [{2: port(2, "h1", "10.0.0.2"), 3: port(3, "h2", "10.0.0.2")}])
    assert history(provider)[1:] == [
        (
            2,
            "updated",
            {"addresses": [[["10.0.0.1", 4, "fixed", ""]], [["10.0.0.2", 4, "fixed", ""]]]},
        ),
        (3, "updated", {"host": ["h1", "h2"]}),
    ]


def test_an_attachment_by_a_port_list_is_the_lists_event_not_a_later_renames(provider):
    run(provider, [{1: host(1, hostname="a")}])
    # E2 gives the host its port list [p], E3 renames the host: one batch
    run(provider, [{2: host(2, port_ids=["p"]), 3: host(3, hostname="b")}])
    assert history(provider) == [(2, "created", {"host": [None, "h"]})]
    assert [(e, a) for e, a, _ in history(provider, "host")] == [(1, "created"), (3, "updated")]


@pytest.mark.parametrize("list_first", [True, False], ids=["list-first", "port-first"])
def test_a_port_known_first_from_a_host_list_is_created_once_in_either_order(
    provider_factory, list_first
):
    provider = provider_factory()
    listed, own = {1: host(1, port_ids=["p"])}, {2: port(2, "h", "10.0.0.1")}
    run(provider, [listed, own] if list_first else [own, listed])
    entries = history(provider)
    assert [a for _, a, _ in entries] == (["created", "updated"] if list_first else ["created"])
    changed = {name: after for _, _, changes in entries for name, (_, after) in changes.items()}
    assert changed == {"host": "h", "addresses": [["10.0.0.1", 4, "fixed", ""]]}
