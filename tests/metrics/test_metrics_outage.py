"""Event outcomes committed before a database outage are counted (issue 15
review): the database refuses one host of a batch (the batch is halved, the
first half commits) and then drops the connection while the second half is
applied (a real backend terminated by the server, as in a restart); the
batch raises, its rerun finds the first half final. What committed is
counted once, by the batch that committed it."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from sync import ingest
from sync.choices import EventStatusChoices as Status
from sync.db_outage import is_unavailable
from sync.models import CloudHost, Event
from tests.metrics.scrape import by_label, parse

pytestmark = pytest.mark.django_db(transaction=True)

# Row by row, as the apply writes them: "b-refused" is refused (the batch is
# halved), "d-drop" makes the server end the connection mid-transaction.
OUTAGE = """
    IF NEW.host_id = 'b-refused' THEN
        RAISE EXCEPTION 'host b-refused is refused';
    END IF;
    IF NEW.host_id = 'd-drop' THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
"""


def outcomes(client, provider) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return by_label(
        parse(response.content.decode()),
        "cloudsync_events_total",
        "outcome",
        provider=str(provider.pk),
    )


def test_outcomes_committed_before_an_outage_are_counted(client, hosts_provider, pg_trigger):
    body = [
        {"id": host, "host": host, "event_type": "compute.instance.create.end"}
        for host in ("a-ok", "b-refused", "c-ok", "d-drop")
    ]
    body.append(
        {"id": "e-bad", "event_type": "compute.instance.create.end"}
    )  # no host: bad payload
    batch = [ingest.Body(hosts_provider.pk, body)]
    database_back = pg_trigger("cs_test_outage", CloudHost, "INSERT OR UPDATE", OUTAGE)
    before = outcomes(client, hosts_provider)

    with pytest.raises(OperationalError) as raised:
        ingest.ingest_bodies(batch)
    assert is_unavailable(raised.value)
    database_back()  # the database is back (and takes every host now)
    status = dict(Event.objects.filter(cloudprovider=hosts_provider).values_list("key", "status"))
    assert status == {
        "a-ok": Status.PROCESSED,
        "b-refused": Status.FAILED,
        "c-ok": Status.QUEUED,
        "d-drop": Status.QUEUED,  # the first half committed
        "e-bad": Status.FAILED,
    }
    during = outcomes(client, hosts_provider)
    assert {k: during.get(k, 0) - before.get(k, 0) for k in during} == {"processed": 1, "failed": 2}

    report = ingest.ingest_bodies(batch)  # the batch's rerun, as the task does after an outage
    assert (report.processed, report.duplicates) == (3, 1)
    after = outcomes(client, hosts_provider)
    # each event counted once as it became final (b-refused failed, then processed on
    # its rerun); a-ok and e-bad, final already, are duplicates of the rerun
    assert {k: after.get(k, 0) - before.get(k, 0) for k in after} == {
        "processed": 4,
        "failed": 2,
        "duplicate": 2,
    }


def test_a_body_recorded_failed_twice_is_counted_failed_once(client, provider):
    # the task's last resort for a body that broke ingestion, delivered twice
    item = ingest.Body(provider.pk, "\x00 not a message", None)
    before = outcomes(client, provider)
    for _ in range(2):
        ingest.record_failed_body(item, ValueError("broke ingestion"))
    assert Event.objects.filter(cloudprovider=provider, status=Status.FAILED).count() == 1
    after = outcomes(client, provider)
    assert {k: after.get(k, 0) - before.get(k, 0) for k in after} == {"failed": 1, "duplicate": 1}
