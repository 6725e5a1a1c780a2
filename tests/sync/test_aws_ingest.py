"""AWS events through the worker's ingest path, real boto3 against moto:
a body of several EventBridge events re-fetches its instances in one call;
then drift made in moto without events is healed by a full sync."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.db import connection

from sync import runs
from sync.choices import EventStatusChoices as Status
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.ingest import ingest_body
from sync.models import CloudHost, Event
from tests.drivers.test_aws_events import count_describe_instances, state_event
from tests.moto_server import MotoServer, fresh_region, moto_server_fixture  # noqa: F401
from tests.sync.rows import row_versions

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def aws(moto_server: MotoServer, provider_factory):
    region = fresh_region()
    config = moto_server.config(region)
    return region, config, provider_factory(cloud_sync_driver="aws.ec2", client_config=config)


def test_a_batch_of_state_changes_re_fetches_once(moto_server, aws):
    region, config, provider = aws
    instances = moto_server.launch(region, count=3, name="web")
    calls = count_describe_instances(config)
    body = [state_event(i["InstanceId"], "running", region, T0, n) for n, i in enumerate(instances)]
    report = ingest_body(provider.pk, json.dumps(body))
    assert (report.processed, report.failed) == (3, 0)
    assert calls == [1]
    hosts = CloudHost.objects.filter(cloudprovider=provider).select_related("cloudflavor")
    assert {h.host_id for h in hosts} == {i["InstanceId"] for i in instances}
    assert all(h.status == "active" and h.cloudflavor.cores for h in hosts)


def test_terminate_then_drift_healed_by_a_full_sync(moto_server, aws):
    region, config, provider = aws
    a, b, c = moto_server.launch(region, count=3)
    ec2 = moto_server.client("ec2", region)
    ingest_body(provider.pk, json.dumps(
        [state_event(i["InstanceId"], "running", region, T0, n) for n, i in enumerate((a, b, c))]))
    ec2.terminate_instances(InstanceIds=[a["InstanceId"]])
    ingest_body(provider.pk, json.dumps(state_event(a["InstanceId"], "terminated", region, T0, 9)))
    assert not CloudHost.objects.filter(host_id=a["InstanceId"]).exists()
    # lost events: b stopped, d launched, nobody told us
    ec2.stop_instances(InstanceIds=[b["InstanceId"]])
    (d,) = moto_server.launch(region)
    run = runs.execute_run(runs.claim_run(provider, "full").pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    hosts = {h.host_id: h for h in CloudHost.objects.filter(cloudprovider=provider)}
    assert set(hosts) == {b["InstanceId"], c["InstanceId"], d["InstanceId"]}
    assert hosts[b["InstanceId"]].status == "stopped"
    assert run.drift["host"]["counts"] == {"created": 1, "updated": 1}
    assert Event.objects.filter(cloudprovider=provider, status=Status.PROCESSED).count() == 4


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads Postgres row versions")
def test_a_no_change_re_sync_rewrites_no_flavor_image_or_account(moto_server, aws):
    # given a synced region
    region, config, provider = aws
    moto_server.launch(region, count=2)
    assert runs.execute_run(runs.claim_run(provider, "full").pk).status == RunStatus.SUCCEEDED
    before = row_versions()
    assert before["sync_cloudflavor"] and before["sync_cloudimage"] and before["sync_cloudproject"]
    # when it is listed again, unchanged
    again = runs.execute_run(runs.claim_run(provider, "full").pk)
    # then instance types, AMIs and the account are not rewritten, though
    # every listing stamps them with its own start (the floor records it once)
    assert again.status == RunStatus.SUCCEEDED and again.drift_healed == 0
    after = row_versions()
    for table in ("sync_cloudflavor", "sync_cloudimage", "sync_cloudproject"):
        assert after[table] == before[table], table
    provider.refresh_from_db()
    assert set(provider.listing_floors["listed"]["versions"]) == {"flavor", "image", "project"}
