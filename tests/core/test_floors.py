"""``Floors.of``: which rows a completed listing vouches for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sync.apply.floors import Floors
from sync.changes import Change, Kind, Op

STARTED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
FLOORS = Floors(STARTED, {"flavor": "v-listing"}, unseen={"flavor": frozenset({"kept"})})


def row(ext: str = "f1", created: timedelta = -timedelta(hours=1), deleted: timedelta | None = None):
    return SimpleNamespace(external_id=ext, created_at=STARTED + created,
                           deleted_at=None if deleted is None else STARTED + deleted)


def test_a_live_row_older_than_the_listing_is_vouched_for():
    assert FLOORS.of(Kind.FLAVOR, row()) == "v-listing"


def test_rows_the_listing_could_not_have_seen_are_not():
    assert FLOORS.of(Kind.FLAVOR, row(created=timedelta(seconds=1))) == ""  # created after it began
    assert FLOORS.of(Kind.FLAVOR, row(created=timedelta(0))) == ""
    assert FLOORS.of(Kind.FLAVOR, row("kept")) == ""  # kept without being listed
    assert FLOORS.of(Kind.FLAVOR, row(deleted=-timedelta(minutes=1))) == ""  # a tombstone
    assert FLOORS.of(Kind.FLAVOR, row(deleted=timedelta(minutes=1))) == ""
    assert FLOORS.of(Kind.HOST, row()) == ""  # a kind without a floor
    assert Floors().of(Kind.FLAVOR, row()) == ""


def test_only_upserts_older_than_the_floor_are_below_it():
    older = Change(Kind.FLAVOR, Op.UPSERT, "f1", {"name": "x"}, "v-before")
    assert FLOORS.below(older)
    assert not FLOORS.below(Change(Kind.FLAVOR, Op.UPSERT, "f1", {"name": "x"}, "v-more"))
    assert not FLOORS.below(Change(Kind.FLAVOR, Op.DELETE, "f1", {}, "v-before"))
    assert not FLOORS.below(Change(Kind.IMAGE, Op.UPSERT, "i1", {"name": "x"}, "v-before"))


def test_a_floor_survives_its_json_form():
    again = Floors.from_json(FLOORS.as_json())
    assert again == FLOORS
    assert again.of(Kind.FLAVOR, row("kept")) == ""
