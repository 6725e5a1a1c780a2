"""Bodies the database cannot store as they are: every message ends in the
inbox exactly once (bad ones failed with the reason, kept losslessly as
text), and their neighbours in a batch are processed."""

from __future__ import annotations

import json

import pytest

from sync.choices import EventStatusChoices as Status
from sync.ingest import ingest_body
from sync.models import CloudHost, Event

pytestmark = pytest.mark.django_db

# Raw JSON texts, as a producer would send them (json.loads accepts each).
NUL = '{"id": "nul", "host": "vm-nul", "hostname": "a\\u0000b"}'
SURROGATE = '{"id": "sur", "host": "vm-sur", "hostname": "x\\ud800y"}'
HUGE = '{"id": "huge", "host": "vm-huge", "hostname": "h", "size": 1e400}'
NUL_KEY = '{"id": "nk", "host": "vm-nk", "a\\u0000": 1}'


@pytest.fixture
def hosts_provider(settings, provider_factory):
    settings.CLOUDSYNC_DRIVERS = ["tests.test_drivers.HostDriver"]
    return provider_factory(cloud_sync_driver="test.hosts", client_config={"region": "r1"})


def good(n: int) -> str:
    return json.dumps({"id": f"good-{n}", "host": f"vm-{n}", "hostname": f"web-{n}"})


@pytest.mark.parametrize(
    "poison, reason",
    [
        (NUL, "NUL character"),
        (SURROGATE, "lone UTF-16 surrogate (\\ud800)"),
        (HUGE, "number out of range (inf)"),
        (NUL_KEY, "NUL character (\\u0000) in a key"),
    ],
)
def test_a_poison_message_in_a_batch_fails_alone_and_is_kept_losslessly(
    hosts_provider, poison, reason
):
    # given a batch [good, poison, good]
    text = f"[{good(1)}, {poison}, {good(2)}]"
    # when the worker ingests it
    report = ingest_body(hosts_provider.pk, text)
    # then the good ones are applied and the bad one failed with its reason
    assert (report.events, report.processed, report.failed, report.retry) == (3, 2, 1, [])
    assert sorted(CloudHost.objects.values_list("host_id", flat=True)) == ["vm-1", "vm-2"]
    bad = Event.objects.get(status=Status.FAILED)
    assert reason in bad.error and bad.error.startswith("bad payload:")
    # the original message comes back exactly from what was stored
    assert json.dumps(json.loads(bad.body["unstorable_json"])) == json.dumps(json.loads(poison))
    assert Event.objects.filter(status=Status.PROCESSED).count() == 2


def test_the_same_poison_message_twice_is_one_inbox_row(hosts_provider):
    ingest_body(hosts_provider.pk, f"[{NUL}]")
    report = ingest_body(hosts_provider.pk, f"[{NUL}, {good(3)}]")
    assert Event.objects.filter(status=Status.FAILED).count() == 1
    assert report.duplicates == 0 and report.failed == 1 and report.processed == 1


def test_a_body_nested_too_deeply_for_the_worker_is_recorded_as_text(hosts_provider, settings):
    # given a body deeper than the limit (queued before the endpoint checked depth)
    settings.CLOUDSYNC_MAX_JSON_DEPTH = 20
    deep = '{"id": "deep", "host": "vm-d", "x": ' + "[" * 50 + "]" * 50 + "}"
    report = ingest_body(hosts_provider.pk, f"[{good(1)}, {deep}]")
    assert (report.processed, report.failed) == (1, 1)
    bad = Event.objects.get(status=Status.FAILED)
    assert "nested deeper than 20 levels" in bad.error
    assert json.loads(bad.body["unstorable_json"]) == json.loads(deep)


def test_a_body_python_cannot_parse_is_recorded_whole_and_failed(hosts_provider):
    # deeper than Python's recursion limit: json.loads raises RecursionError
    deep = "[" * 100_000 + "]" * 100_000
    report = ingest_body(hosts_provider.pk, deep)
    assert report.failed == 1
    bad = Event.objects.get()
    assert bad.status == Status.FAILED and "nested too deeply" in bad.error
    assert bad.body["unstorable_body"] == deep


def test_values_the_driver_passes_but_the_database_refuses_fail_alone(hosts_provider):
    # a 100 KB hostname: the varchar refuses it at apply time
    text = json.dumps([{"id": "long", "host": "vm-l", "hostname": "x" * 100_000},
                       json.loads(good(1))])
    report = ingest_body(hosts_provider.pk, text)
    assert (report.processed, report.failed) == (1, 1)
    assert Event.objects.get(key="long").error.startswith("apply error:")


def test_wrong_types_fail_with_the_drivers_reason(hosts_provider):
    text = json.dumps([["not", "an", "object"], 42, "text", json.loads(good(1))])
    report = ingest_body(hosts_provider.pk, text)
    assert (report.events, report.processed, report.failed) == (4, 1, 3)
    errors = list(Event.objects.filter(status=Status.FAILED).values_list("error", flat=True))
    assert errors and all(e.startswith("bad payload:") for e in errors), errors


def test_numbers_out_of_range_that_differ_stay_different_events(hosts_provider):
    one = '{"id": "n1", "host": "vm-n", "size": 1e400}'
    two = '{"id": "n1", "host": "vm-n", "size": 2e400}'
    ingest_body(hosts_provider.pk, one)
    ingest_body(hosts_provider.pk, two)
    ingest_body(hosts_provider.pk, two)  # a duplicate delivery of the second
    assert Event.objects.filter(status=Status.FAILED).count() == 2
