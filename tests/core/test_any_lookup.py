"""``field__any``: list membership as one array parameter on Postgres."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sync.models import CloudHost, Event

pytestmark = pytest.mark.django_db


def test_any_selects_the_listed_rows_with_one_parameter(provider):
    hosts = [CloudHost.objects.create(cloudprovider=provider, host_id=f"h{i}") for i in range(300)]
    wanted = [h.pk for h in hosts[::3]]
    with CaptureQueriesContext(connection) as queries:
        found = set(CloudHost.objects.filter(pk__any=wanted).values_list("pk", flat=True))
    assert found == set(wanted)
    if connection.vendor == "postgresql":
        [query] = queries.captured_queries
        assert "= ANY(" in query["sql"] and query["sql"].count(", ") < 50
    assert set(CloudHost.objects.filter(host_id__any=["h1", "h2", "nope"])
               .values_list("host_id", flat=True)) == {"h1", "h2"}
    assert not CloudHost.objects.filter(pk__any=[]).exists()


def test_any_on_a_foreign_key(provider, provider_factory):
    other = provider_factory()
    for p, key in ((provider, "a"), (other, "b")):
        Event.objects.create(cloudprovider=p, key=key, received_at="2024-01-01T00:00:00Z")
    assert set(Event.objects.filter(cloudprovider_id__any=[other.pk])
               .values_list("key", flat=True)) == {"b"}


AWKWARD = ['we"ird', "back\\slash", "\\", '"', "a,b", "{x}", "NULL", "null", "", " sp ", "ünï😀",
           "tab\there", "new\nline", "'quote'"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a Postgres array literal")
def test_a_text_array_arrives_exactly_as_sent():
    """TextArray's own literal (sync.models.lookups) against what the server parses."""
    from sync.models.lookups import TextArray

    with connection.cursor() as cursor:
        cursor.execute("SELECT x FROM unnest(%s::text[]) WITH ORDINALITY AS u(x, n) ORDER BY n",
                       [TextArray(AWKWARD)])
        assert [row[0] for row in cursor.fetchall()] == AWKWARD
        cursor.execute("SELECT %s::text[] = %s::text[]", [TextArray(AWKWARD), list(AWKWARD)])
        assert cursor.fetchone()[0] is True
        cursor.execute("SELECT cardinality(%s::text[])", [TextArray()])
        assert cursor.fetchone()[0] == 0


def test_any_finds_awkward_ids(provider):
    for n, host_id in enumerate(AWKWARD):
        CloudHost.objects.create(cloudprovider=provider, host_id=host_id or f"empty-{n}")
    wanted = [i for i in AWKWARD if i][::2]
    found = CloudHost.objects.filter(host_id__any=[*wanted, "absent"]).values_list("host_id",
                                                                                   flat=True)
    assert sorted(found) == sorted(wanted)
