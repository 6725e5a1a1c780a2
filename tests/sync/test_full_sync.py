"""Full sync against a fake OpenStack over HTTP, with the real openstacksdk,
reconciled through the same apply() as events."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from sync import errors, reconcile, runs
from sync import split as split_module
from sync.apply import Floors, apply
from sync.changes import Change, Kind, Op, Source, make_version
from sync.choices import SyncRunKindChoices as RunKind
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.drivers.base import TemporaryError
from sync.drivers.registry import get_driver
from sync.ingest import ingest_body, replay
from sync.models import CloudFlavor, CloudHost, CloudHostIP, Event, ListedId, SyncRun
from tests.fake_openstack import FakeOpenStack
from tests.fixtures import load_nova_versioned, with_wire_fields
from tests.inventory import inventory_of
from tests.sync.rows import row_versions

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


@pytest.fixture
def provider(fake_openstack: FakeOpenStack, provider_factory):
    """This module's provider: the OpenStack driver pointed at the fake cloud."""
    return provider_factory(cloud_sync_driver="openstack.ocata",
                            client_config=fake_openstack.client_config())


def seed(fake_openstack: FakeOpenStack, servers: int = 10) -> list[dict]:
    fake_openstack.data.add_projects(2)
    fake_openstack.data.add_flavors(3)
    fake_openstack.data.add_image()
    return fake_openstack.data.add_servers(servers)


def full_sync(provider, kind=RunKind.FULL, mode: str = "unsplit") -> SyncRun:
    """A run executed here. ``mode="split"``: a full sync split into the
    driver's parts, each executed by ``runs.execute_part`` as its task would,
    then ``runs.finish_split`` with their outcomes, as the chord's body would
    (tests/e2e/test_split_sync_worker.py runs the same through Celery)."""
    run = runs.claim_run(provider, kind)
    if mode == "unsplit":
        return runs.execute_run(run.pk)
    token = runs.SPLIT + "in-process"
    SyncRun.objects.filter(pk=run.pk).update(worker=token, heartbeat_at=timezone.now())
    driver = get_driver(provider.cloud_sync_driver)
    parts = [runs.execute_part(run.pk, part, token) for part in driver.list_parts({})]
    return runs.finish_split(run.pk, token, parts)


@pytest.fixture(params=["unsplit", "split"])
def mode(request) -> str:
    """Full syncs run in one piece, or split into parts."""
    return request.param


def midway(monkeypatch, when: Callable[[], None], after_hosts: int = 3) -> None:
    """Call ``when`` once while the listing streams, after ``after_hosts``
    listed servers (events racing with a full sync), split or not."""
    from sync.drivers.openstack import OpenStackDriver

    original = OpenStackDriver.list_inventory
    done: list[bool] = []

    def list_inventory(self, config, part=None):
        snapshot = original(self, config, part)
        changes = snapshot.changes

        def racing():
            hosts_seen = 0
            for change in changes:
                if change.kind == Kind.HOST:
                    hosts_seen += 1
                    if hosts_seen == after_hosts and not done:
                        done.append(True)
                        when()
                yield change

        snapshot.changes = racing()
        return snapshot

    monkeypatch.setattr(OpenStackDriver, "list_inventory", list_inventory)


def hosts(provider) -> dict[str, CloudHost]:
    return {h.host_id: h for h in CloudHost.objects.filter(cloudprovider=provider)}


def listed(fake_openstack: FakeOpenStack, servers: list[dict], visible: bool) -> None:
    """Make servers vanish from (or reappear in) the listing, as a partial or
    racing listing would, without touching their updated_at."""
    for s in servers:
        fake_openstack.data.servers.records[s["id"]]["_deleted"] = not visible
    fake_openstack.data.servers.touch()


def held_plan(fake_openstack: FakeOpenStack, provider, settings, hidden: int) -> tuple[list[dict], SyncRun]:
    """10 synced servers, then a run that misses ``hidden`` of them: its
    deletions are held back by the mass-delete guard."""
    settings.CLOUDSYNC_MASS_DELETE_MIN_COUNT = 2
    servers = seed(fake_openstack, 10)
    full_sync(provider)
    listed(fake_openstack, servers[:hidden], visible=False)
    held = full_sync(provider)
    assert held.status == RunStatus.NEEDS_APPROVAL
    return servers, held


def test_empty_database_then_a_second_run_changes_nothing(fake_openstack, provider):
    # given
    servers = seed(fake_openstack, 12)
    # when
    run = full_sync(provider)
    # then
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert set(hosts(provider)) == {s["id"] for s in servers}
    host = CloudHost.objects.select_related("cloudflavor", "image", "project").get(host_id=servers[0]["id"])
    assert host.hostname == servers[0]["name"] and host.status == "active"
    assert host.cloudflavor.cores and host.cloudflavor.memory and host.image.name
    assert host.hypervisor == servers[0]["OS-EXT-SRV-ATTR:host"]
    assert CloudHostIP.objects.filter(host__cloudprovider=provider).count() == 12
    assert run.counts["host"] == {"created": 12}
    assert run.drift_healed == sum(sum(c.values()) for c in run.counts.values())
    provider.refresh_from_db()
    assert provider.last_full_sync_status == RunStatus.SUCCEEDED
    # when: nothing changed in the cloud
    again = full_sync(provider)
    # then
    assert again.status == RunStatus.SUCCEEDED
    assert again.drift_healed == 0
    assert {o for counts in again.counts.values() for o in counts} == {"unchanged"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads Postgres row versions")
def test_a_no_change_re_sync_writes_no_inventory_row(fake_openstack, provider, mode):
    # given a synced provider (servers with ports and addresses, flavors, images, projects)
    servers = seed(fake_openstack, 12)
    assert full_sync(provider, mode=mode).status == RunStatus.SUCCEEDED
    before = row_versions()
    assert all(before.values()), before
    # when nothing changed in the cloud
    again = full_sync(provider, mode=mode)
    # then not one inventory row was written, not even the flavors and
    # projects the API lists without an update time of their own (their
    # listing's time is recorded once, as the provider's listing floor)
    assert again.status == RunStatus.SUCCEEDED and again.drift_healed == 0
    assert row_versions() == before
    provider.refresh_from_db()
    assert provider.listing_floors["listed"]["versions"].keys() == {"flavor", "project"}
    assert "pending" not in provider.listing_floors
    # and deletions still work in the next run that has drift
    fake_openstack.data.delete_server(servers[0]["id"])
    third = full_sync(provider, mode=mode)
    assert third.status == RunStatus.SUCCEEDED, third.error
    assert third.drift["host"]["counts"] == {"deleted": 1}
    assert servers[0]["id"] not in hosts(provider)


def flavor_event(flavor: dict, name: str, when) -> dict:
    """Nova's versioned flavor.update sample about ``flavor``, sent at ``when``."""
    message = load_nova_versioned("flavor-update.json")
    data = message["payload"]["nova_object.data"]
    data.update(flavorid=flavor["id"], name=name, vcpus=flavor["vcpus"],
                memory_mb=flavor["ram"], root_gb=flavor["disk"], is_public=True, extra_specs={})
    return with_wire_fields(message, message_id=f"{flavor['id']}-{name}",
                            timestamp=when.strftime("%Y-%m-%d %H:%M:%S.%f"))


def test_an_event_older_than_a_listing_that_wrote_nothing_still_loses(
    fake_openstack, provider, mode
):
    # given a flavor synced, then renamed and renamed back in the cloud: the
    # rename's event is late, and a re-sync found the flavor as it was
    # (so it wrote nothing)
    seed(fake_openstack, 1)
    flavor = fake_openstack.data.flavors.records[next(iter(fake_openstack.data.flavors.records))]
    assert full_sync(provider, mode=mode).status == RunStatus.SUCCEEDED
    renamed_at = timezone.now()
    assert full_sync(provider, mode=mode).status == RunStatus.SUCCEEDED
    stored = CloudFlavor.objects.get(flavor_id=flavor["id"])
    assert stored.name == flavor["name"]
    # when the late rename arrives
    report = ingest_body(provider.pk, json.dumps(flavor_event(flavor, "renamed", renamed_at)))
    # then it is old news: the listing after it saw the flavor's name
    assert report.processed == 1
    assert CloudFlavor.objects.get(flavor_id=flavor["id"]).name == flavor["name"]
    assert Event.objects.get().result == {"flavor": {"stale": 1}}
    # while news newer than the listing still applies
    ingest_body(provider.pk, json.dumps(flavor_event(flavor, "newer", timezone.now())))
    assert CloudFlavor.objects.get(flavor_id=flavor["id"]).name == "newer"


def test_an_event_older_than_a_running_listing_waits_for_it(
    fake_openstack, provider, mode, monkeypatch
):
    # given a synced flavor, renamed and renamed back in the cloud, the
    # rename's event late
    seed(fake_openstack, 5)
    flavor = fake_openstack.data.flavors.records[next(iter(fake_openstack.data.flavors.records))]
    assert full_sync(provider, mode=mode).status == RunStatus.SUCCEEDED
    renamed_at = timezone.now()
    # when the late event arrives while the next listing streams (after it
    # found the flavor unchanged)
    midway(monkeypatch, lambda: ingest_body(
        provider.pk, json.dumps(flavor_event(flavor, "renamed", renamed_at))))
    run = full_sync(provider, mode=mode)
    # then it was not applied but waited, queued, for the run to end
    assert run.status == RunStatus.SUCCEEDED
    event = Event.objects.get()
    assert event.status == "queued" and "waiting" in event.error
    assert CloudFlavor.objects.get(flavor_id=flavor["id"]).name == flavor["name"]
    # and once replayed it lost to the listing, which saw the flavor after it
    replay([event.pk])
    event.refresh_from_db()
    assert event.status == "processed" and event.result == {"flavor": {"stale": 1}}
    assert CloudFlavor.objects.get(flavor_id=flavor["id"]).name == flavor["name"]


def test_an_event_right_after_a_listing_completed_still_loses(fake_openstack, provider,
                                                             monkeypatch):
    # the run's outcome and its floor are recorded together: an event ingested
    # just after the run is marked done sees the floor (reviewer's scenario)
    seed(fake_openstack, 1)
    flavor = fake_openstack.data.flavors.records[next(iter(fake_openstack.data.flavors.records))]
    assert full_sync(provider).status == RunStatus.SUCCEEDED
    renamed_at = timezone.now()
    original_finish = runs._finish

    def finish_then_ingest(run, result, *args, **kwargs):
        original_finish(run, result, *args, **kwargs)
        ingest_body(provider.pk, json.dumps(flavor_event(flavor, "renamed", renamed_at)))

    monkeypatch.setattr(runs, "_finish", finish_then_ingest)
    assert full_sync(provider).status == RunStatus.SUCCEEDED
    assert Event.objects.get().result == {"flavor": {"stale": 1}}
    assert CloudFlavor.objects.get(flavor_id=flavor["id"]).name == flavor["name"]


def test_a_listing_that_failed_part_way_still_vouches_for_what_it_applied(
    fake_openstack, provider, monkeypatch
):
    # given a synced flavor; the next listing applies the flavors, then a
    # server page fails (reviewer's scenario; chunks of one object stand in
    # for a large cloud, where the flavors' chunk commits long before)
    seed(fake_openstack, 1)
    flavor = fake_openstack.data.flavors.records[next(iter(fake_openstack.data.flavors.records))]
    assert full_sync(provider).status == RunStatus.SUCCEEDED
    renamed_at = timezone.now()
    monkeypatch.setattr(reconcile, "CHUNK", 1)
    fake_openstack.fail(400, "/compute/v2.1/servers/detail", times=100)
    run = full_sync(provider)
    assert run.status == RunStatus.FAILED, run.error
    # when an event older than that listing arrives
    ingest_body(provider.pk, json.dumps(flavor_event(flavor, "renamed", renamed_at)))
    # then it loses: the listing saw the flavor after it
    assert CloudFlavor.objects.get(flavor_id=flavor["id"]).name == flavor["name"]
    assert Event.objects.get().result == {"flavor": {"stale": 1}}


def test_a_listing_does_not_vouch_for_what_it_kept_without_listing(fake_openstack, provider):
    # given two synced flavors; one vanishes from the listing, but an event
    # changed it after the listing began (deletion safety keeps it)
    fake_openstack.data.add_flavors(2)
    gone, kept = list(fake_openstack.data.flavors.records.values())
    assert full_sync(provider).status == RunStatus.SUCCEEDED
    del fake_openstack.data.flavors.records[gone["id"]]
    fake_openstack.data.flavors.touch()
    run = runs.claim_run(provider, RunKind.FULL)
    CloudFlavor.objects.filter(flavor_id=gone["id"]).update(
        last_event_at=timezone.now() + timedelta(minutes=1))
    # when the listing completes
    assert runs.execute_run(run.pk).status == RunStatus.SUCCEEDED
    # then the flavor is kept, and the listing's floor leaves it out
    assert CloudFlavor.objects.filter(flavor_id=gone["id"]).exists()
    provider.refresh_from_db()
    assert provider.listing_floors["listed"]["unseen"] == {"flavor": [gone["id"]]}
    assert kept["id"] not in provider.listing_floors["listed"]["unseen"]["flavor"]


def test_a_listing_that_failed_holds_no_event_back(fake_openstack, provider):
    seed(fake_openstack, 1)
    flavor = fake_openstack.data.flavors.records[next(iter(fake_openstack.data.flavors.records))]
    assert full_sync(provider).status == RunStatus.SUCCEEDED
    renamed_at = timezone.now()
    run = runs.claim_run(provider, RunKind.FULL)
    runs._set_floors(run, pending=Floors(timezone.now(), {"flavor": make_version(
        timezone.now(), None)}, run.pk))
    runs.fail_run(run, "network error: gone")
    # an event older than the failed listing is applied: nothing vouched for the flavor since
    ingest_body(provider.pk, json.dumps(flavor_event(flavor, "renamed", renamed_at)))
    assert CloudFlavor.objects.get(flavor_id=flavor["id"]).name == "renamed"


def test_one_run_heals_drift_and_counts_it_exactly(fake_openstack, provider, mode):
    servers = seed(fake_openstack, 10)
    assert full_sync(provider, mode=mode).status == RunStatus.SUCCEEDED
    # events were lost while: one server was deleted, two renamed, one added, one stopped
    gone, renamed, stopped = servers[0], servers[1:3], servers[3]
    old_names = {s["id"]: s["name"] for s in renamed}
    fake_openstack.data.delete_server(gone["id"])
    for s in renamed:
        fake_openstack.data.update_server(s["id"], name=old_names[s["id"]] + "-renamed")
    fake_openstack.data.update_server(stopped["id"], status="SHUTOFF")
    added = fake_openstack.data.add_server()
    # and an event got one host wrong in the database (older than the cloud's state)
    apply(provider, [Change(Kind.HOST, Op.UPSERT, servers[4]["id"], {"hypervisor": "wrong"}, make_version(1))])
    CloudHost.objects.filter(host_id=servers[4]["id"]).update(hypervisor="wrong")
    run = full_sync(provider, mode=mode)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.drift["host"]["counts"] == {"deleted": 1, "updated": 4, "created": 1}
    assert run.drift["host_ip"]["counts"] == {"created": 1}
    assert run.drift_healed == 7
    assert set(run.drift["host"]["sample"]["updated"]) == {s["id"] for s in [*renamed, stopped, servers[4]]}
    now = hosts(provider)
    assert gone["id"] not in now and added["id"] in now
    assert now[renamed[0]["id"]].hostname.endswith("-renamed")
    assert now[stopped["id"]].status == "stopped"
    assert now[servers[4]["id"]].hypervisor == servers[4]["OS-EXT-SRV-ATTR:host"]
    assert CloudHost.all_objects.get(host_id=gone["id"]).deleted_at is not None


def test_events_racing_with_a_full_sync_never_regress_a_host(fake_openstack, provider, mode,
                                                              monkeypatch):
    servers = seed(fake_openstack, 6)
    target = servers[0]
    future = timezone.now() + timedelta(minutes=5)

    def events():  # events arrive while the listing streams in
        apply(provider, [
            Change(Kind.HOST, Op.UPSERT, target["id"], {"status": "stopped"},
                   make_version(future, future)),
            Change(Kind.HOST, Op.UPSERT, "created-during-listing", {"hostname": "new"},
                   make_version(future, future)),
        ])

    midway(monkeypatch, events)
    run = full_sync(provider, mode=mode)
    assert run.status == RunStatus.SUCCEEDED, run.error
    now = hosts(provider)
    assert now[target["id"]].status == "stopped"  # the newer event wins over the listing
    assert now[target["id"]].hostname == target["name"]  # while the listing filled the rest
    assert "created-during-listing" in now  # not deleted: it changed after the listing began


def test_an_event_deleting_a_listed_host_midway_is_not_undone(fake_openstack, provider, mode,
                                                              monkeypatch):
    servers = seed(fake_openstack, 6)
    assert full_sync(provider, mode=mode).status == RunStatus.SUCCEEDED
    gone = servers[-1]  # listed after the event: the listing still shows it
    later = timezone.now() + timedelta(minutes=5)
    midway(monkeypatch, lambda: apply(provider, [
        Change(Kind.HOST, Op.DELETE, gone["id"], {}, make_version(later, later))]))
    run = full_sync(provider, mode=mode)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert gone["id"] not in hosts(provider)  # the delete event wins over the older listing
    assert len(hosts(provider)) == 5


def test_listing_failure_mid_pagination_fails_the_run_and_deletes_nothing(fake_openstack, provider):
    seed(fake_openstack, 30)
    assert full_sync(provider).status == RunStatus.SUCCEEDED
    fake_openstack.nova_max_limit = 10
    fake_openstack.fail(500, "/compute/v2.1/servers/detail", after=1, times=100)
    with pytest.raises(CommandError, match="network error: listing servers failed"):
        call_command("cloudsync_sync", str(provider.pk))
    run = SyncRun.objects.filter(cloudprovider=provider).order_by("-pk").first()
    assert run.status == RunStatus.FAILED
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 30
    assert not SyncRun.objects.filter(cloudprovider=provider, status=RunStatus.RUNNING).exists()


def test_a_split_run_whose_part_fails_mid_listing_fails_and_deletes_nothing(
    fake_openstack, provider, settings
):
    # given a synced cloud, then 5 servers and a flavor gone (the other parts would delete them)
    settings.CLOUDSYNC_MASS_DELETE_MIN_COUNT = 100
    servers = seed(fake_openstack, 30)
    assert full_sync(provider).status == RunStatus.SUCCEEDED
    for s in servers[:5]:
        fake_openstack.data.delete_server(s["id"])
    apply(provider, [Change(Kind.FLAVOR, Op.UPSERT, "gone-flavor", {"name": "gone"}, "1")])
    # when the servers part fails on its second page (temporary errors are
    # retried by the task; here the part is executed once, as its last try)
    fake_openstack.nova_max_limit = 10
    fake_openstack.fail(500, "/compute/v2.1/servers/detail", after=1, times=100)
    run = runs.claim_run(provider, RunKind.FULL)
    token = runs.SPLIT + "in-process"
    SyncRun.objects.filter(pk=run.pk).update(worker=token)
    outcomes = []
    for part in ("catalog", "servers", "ips"):
        try:
            outcomes.append(runs.execute_part(run.pk, part, token))
        except TemporaryError as exc:
            outcomes.append(runs.fail_part(run.pk, part, token, exc))
    done = runs.finish_split(run.pk, token, outcomes)
    # then the run failed with the part's error, and nothing was deleted
    assert done.status == RunStatus.FAILED
    assert done.error.startswith("part servers failed: network error: listing servers failed")
    assert outcomes[2].get("skipped")  # the part after the failure did not list
    assert CloudHost.objects.filter(cloudprovider=provider).count() == 30
    assert CloudFlavor.objects.filter(cloudprovider=provider, flavor_id="gone-flavor").exists()
    assert not ListedId.objects.filter(run_id=run.pk).exists()


def test_mass_delete_guard_holds_deletions_and_the_plan_can_be_applied(fake_openstack, provider,
                                                                       settings, mode):
    settings.CLOUDSYNC_MASS_DELETE_RATIO = 0.2
    settings.CLOUDSYNC_MASS_DELETE_MIN_COUNT = 2
    servers = seed(fake_openstack, 10)
    full_sync(provider, mode=mode)
    for s in servers[:4]:
        fake_openstack.data.delete_server(s["id"])
    run = full_sync(provider, mode=mode)
    assert run.status == RunStatus.NEEDS_APPROVAL
    assert "mass-delete guard" in run.error and "4 of 10 hosts" in run.error
    assert len(hosts(provider)) == 10  # nothing deleted yet
    assert {p["external_id"] for p in run.plan if p["kind"] == "host"} == {s["id"] for s in servers[:4]}
    call_command("cloudsync_apply_plan", str(run.pk))
    run.refresh_from_db()
    assert run.status == RunStatus.APPLIED
    assert len(hosts(provider)) == 6
    with pytest.raises(CommandError, match="no stored plan"):
        call_command("cloudsync_apply_plan", str(run.pk))


def test_dry_run_stores_a_field_by_field_plan_and_applies_nothing(fake_openstack, provider):
    servers = seed(fake_openstack, 5)
    full_sync(provider)
    old_name = servers[0]["name"]
    fake_openstack.data.update_server(servers[0]["id"], name="renamed")
    fake_openstack.data.delete_server(servers[1]["id"])
    run = full_sync(provider, RunKind.DRY_RUN)
    assert run.status == RunStatus.PLANNED
    by_id = {(p["kind"], p["external_id"]): p for p in run.plan}
    assert by_id[("host", servers[0]["id"])]["diff"]["hostname"] == [old_name, "renamed"]
    assert by_id[("host", servers[1]["id"])]["op"] == "delete"
    assert hosts(provider)[servers[0]["id"]].hostname == old_name  # untouched
    assert servers[1]["id"] in hosts(provider)
    runs.apply_stored_plan(run.pk)
    assert hosts(provider)[servers[0]["id"]].hostname == "renamed"
    assert servers[1]["id"] not in hosts(provider)


def test_deletes_stay_inside_what_was_listed(fake_openstack, provider, provider_factory, mode):
    seed(fake_openstack, 3)
    full_sync(provider, mode=mode)
    other = provider_factory(cloud_sync_driver="noop")
    apply(other, [Change(Kind.HOST, Op.UPSERT, "elsewhere", {"hostname": "x"}, "1")])
    fake_openstack.projects_forbidden = True  # projects cannot be listed: none is deleted
    run = full_sync(provider, mode=mode)
    assert run.status == RunStatus.SUCCEEDED
    assert CloudHost.objects.filter(cloudprovider=other).count() == 1
    assert "project" not in {k for k, c in run.counts.items() if c.get("deleted")}


def test_catch_up_applies_changes_since_the_last_run_including_deletes(fake_openstack, provider):
    servers = seed(fake_openstack, 5)
    full_sync(provider)
    fake_openstack.data.clock = timezone.now()  # the cloud's clock: changes happen after that run
    fake_openstack.data.delete_server(servers[0]["id"])
    fake_openstack.data.update_server(servers[1]["id"], name="caught-up")
    run = full_sync(provider, RunKind.CATCH_UP)
    assert run.status == RunStatus.SUCCEEDED, run.error
    now = hosts(provider)
    assert servers[0]["id"] not in now
    assert now[servers[1]["id"]].hostname == "caught-up"
    assert len(now) == 4


def test_one_run_per_provider_at_a_time(fake_openstack, provider):
    runs.claim_run(provider, RunKind.FULL)
    with pytest.raises(errors.RunInProgress, match="already running"):
        runs.claim_run(provider, RunKind.DRY_RUN)
    with pytest.raises(CommandError, match="already running"):
        call_command("cloudsync_sync", str(provider.pk))


def test_auth_failure_is_reported_as_such_and_deletes_nothing(fake_openstack, provider):
    seed(fake_openstack, 3)
    full_sync(provider)
    fake_openstack.reject_tokens = True
    with pytest.raises(CommandError, match="authentication failed"):
        call_command("cloudsync_sync", provider.name)
    run = SyncRun.objects.filter(cloudprovider=provider).order_by("-pk").first()
    assert run.status == RunStatus.FAILED and run.error.startswith("authentication failed")
    assert len(hosts(provider)) == 3


def test_management_commands_print_what_they_saw(fake_openstack, provider, capsys):
    seed(fake_openstack, 2)
    call_command("cloudsync_sync", provider.name)
    out = capsys.readouterr().out
    assert "succeeded" in out and "host: created 2" in out
    call_command("cloudsync_test_connection", str(provider.pk))
    assert "connection OK" in capsys.readouterr().out
    fake_openstack.reject_tokens = True
    with pytest.raises(CommandError, match="authentication failed"):
        call_command("cloudsync_test_connection", str(provider.pk))


def test_a_run_whose_driver_vanished_fails_and_releases_the_lock(fake_openstack, provider):
    run = runs.claim_run(provider, RunKind.FULL)
    type(provider).objects.filter(pk=provider.pk).update(cloud_sync_driver="gone.driver")
    done = runs.execute_run(run.pk)
    assert done.status == RunStatus.FAILED and "gone.driver" in done.error
    runs.claim_run(provider, RunKind.FULL)  # not locked


def test_an_abandoned_running_run_does_not_lock_the_provider_forever(fake_openstack, provider, settings):
    run = runs.claim_run(provider, RunKind.FULL)
    SyncRun.objects.filter(pk=run.pk).update(
        started_at=timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 3600))
    fresh = runs.claim_run(provider, RunKind.FULL)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "abandoned" in run.error
    assert fresh.status == RunStatus.RUNNING


def test_a_later_listing_brings_back_what_a_full_sync_deleted(fake_openstack, provider, settings):
    settings.CLOUDSYNC_MASS_DELETE_MIN_COUNT = 100
    servers = seed(fake_openstack, 4)
    full_sync(provider)
    hidden = servers[0]
    listed(fake_openstack, [hidden], visible=False)  # a listing that missed it
    assert full_sync(provider).status == RunStatus.SUCCEEDED
    assert hidden["id"] not in hosts(provider)
    listed(fake_openstack, [hidden], visible=True)  # listed again, same updated_at
    run = full_sync(provider)
    assert hidden["id"] in hosts(provider)
    assert run.drift["host"]["counts"] == {"created": 1}


def test_a_stored_plan_is_refused_once_a_later_listing_completed(fake_openstack, provider, settings):
    servers, held = held_plan(fake_openstack, provider, settings, hidden=6)
    listed(fake_openstack, servers[:6], visible=True)
    assert full_sync(provider).status == RunStatus.SUCCEEDED
    with pytest.raises(errors.PlanNotApplicable, match="superseded"):
        runs.apply_stored_plan(held.pk)
    assert len(hosts(provider)) == 10


def test_planned_deletions_skip_objects_an_event_touched_since(fake_openstack, provider, settings):
    settings.CLOUDSYNC_MASS_DELETE_MIN_COUNT = 2
    servers = seed(fake_openstack, 10)
    full_sync(provider)
    for s in servers[:4]:
        fake_openstack.data.delete_server(s["id"])
    held = full_sync(provider)
    assert held.status == RunStatus.NEEDS_APPROVAL
    apply(provider, [Change(Kind.HOST, Op.UPSERT, servers[0]["id"], {"hostname": "still-here"},
                            make_version(timezone.now(), timezone.now()))])
    runs.apply_stored_plan(held.pk)
    assert set(hosts(provider)) == {s["id"] for s in servers[4:]} | {servers[0]["id"]}


def test_planned_deletions_skip_objects_a_catch_up_saw_since(fake_openstack, provider, settings):
    servers, held = held_plan(fake_openstack, provider, settings, hidden=4)
    apply(provider, [Change(Kind.HOST, Op.UPSERT, servers[0]["id"], {"hostname": "seen"},
                            make_version(1), Source.CATCH_UP)])
    runs.apply_stored_plan(held.pk)
    assert servers[0]["id"] in hosts(provider)
    assert not {s["id"] for s in servers[1:4]} & set(hosts(provider))


def test_a_pushed_snapshot_without_a_listing_time_resurrects_nothing(provider_factory):
    from sync.drivers.base import Snapshot

    provider = provider_factory()
    apply(provider, [Change(Kind.HOST, Op.UPSERT, "x", {"hostname": "x"}, make_version(1))])
    apply(provider, [Change(Kind.HOST, Op.DELETE, "x", {}, make_version(2))])  # event: deleted
    run = runs.claim_run(provider, RunKind.SNAPSHOT)
    listed = Change(Kind.HOST, Op.UPSERT, "x", {"hostname": "x"}, make_version(1), Source.FULL_SYNC)
    runs.reconcile_run(run, Snapshot(changes=[listed], kinds=frozenset({Kind.HOST})))
    assert "x" not in hosts(provider)


def test_a_plan_is_refused_once_a_later_listing_began_even_if_it_failed(
    fake_openstack, provider, settings, monkeypatch
):
    # given a held plan that would delete 6 hosts, and a later full sync that
    # listed them alive (unchanged, so not rewritten) and then failed
    servers, held = held_plan(fake_openstack, provider, settings, hidden=6)
    listed(fake_openstack, servers[:6], visible=True)
    import sync.reconcile as reconcile_module

    def crash(*args, **kwargs):
        raise RuntimeError("crash after the listing was applied")

    monkeypatch.setattr(reconcile_module, "_guard", crash)
    assert full_sync(provider).status == RunStatus.FAILED
    monkeypatch.undo()
    # then the old plan cannot be applied, and nothing was deleted
    with pytest.raises(errors.PlanNotApplicable, match="superseded"):
        runs.apply_stored_plan(held.pk)
    assert len(hosts(provider)) == 10


def test_a_plan_is_refused_while_a_later_listing_runs(fake_openstack, provider, settings):
    servers, held = held_plan(fake_openstack, provider, settings, hidden=6)
    runs.claim_run(provider, RunKind.FULL)  # a later full sync, still running
    with pytest.raises(errors.PlanNotApplicable, match="running"):
        runs.apply_stored_plan(held.pk)
    assert len(hosts(provider)) == 10


def test_a_duplicate_message_for_a_finished_run_is_not_a_second_failed_task(provider_factory):
    from sync.tasks import run_sync

    run = runs.claim_run(provider_factory(), RunKind.FULL)
    runs.fail_run(run, "network error: cloud down")  # recorded (and counted) by the first task
    result = run_sync.apply(kwargs={"run_id": run.pk})  # a redelivery or a sweeper copy
    assert result.successful(), result.traceback
    assert result.result["executed_here"] is False
    assert SyncRun.objects.get(pk=run.pk).status == RunStatus.FAILED


def drift_the_cloud(fake_openstack: FakeOpenStack, servers: list[dict]) -> None:
    """What lost events leave behind: deletions, renames, a stopped server,
    new servers (with ports), a new flavor and image."""
    fake_openstack.data.delete_server(servers[0]["id"])
    fake_openstack.data.delete_server(servers[1]["id"])
    fake_openstack.data.update_server(servers[2]["id"], name="renamed")
    fake_openstack.data.update_server(servers[3]["id"], status="SHUTOFF")
    fake_openstack.data.add_flavors(1)
    fake_openstack.data.add_image()
    fake_openstack.data.add_servers(3)


def test_a_split_run_gives_the_same_inventory_as_an_unsplit_one(fake_openstack, provider_factory):
    # given two providers of the same cloud
    servers = seed(fake_openstack, 25)
    config = fake_openstack.client_config()
    one, parts = (provider_factory(cloud_sync_driver="openstack.ocata", client_config=config)
                  for _ in range(2))
    # when one is synced in one piece and the other in parts, from empty
    assert full_sync(one).status == RunStatus.SUCCEEDED
    split_run = full_sync(parts, mode="split")
    # then their inventories are the same, and so are the runs' counts
    assert split_run.status == RunStatus.SUCCEEDED, split_run.error
    assert split_run.worker.startswith(runs.SPLIT)
    assert {p: o["objects"] for p, o in split_run.parts.items()} == {
        "catalog": 3 + 3 + 1, "servers": 25, "ips": 25}  # projects (+ admin), flavors, image
    assert inventory_of(parts) == inventory_of(one)
    assert inventory_of(one)["cloudhost"] and inventory_of(one)["cloudhostip"]
    unsplit_run = SyncRun.objects.filter(cloudprovider=one).get()
    assert split_run.counts == unsplit_run.counts
    assert split_run.drift_healed == unsplit_run.drift_healed
    # and again after drift (deletions decided from the parts' listed ids)
    drift_the_cloud(fake_openstack, servers)
    again_one = full_sync(one)
    again_parts = full_sync(parts, mode="split")
    assert again_parts.status == again_one.status == RunStatus.SUCCEEDED, again_parts.error
    assert again_parts.drift["host"]["counts"] == again_one.drift["host"]["counts"] \
        == {"created": 3, "updated": 2, "deleted": 2}
    assert inventory_of(parts) == inventory_of(one)
    assert not ListedId.objects.exists()


@pytest.mark.parametrize(("previous", "split"), [(None, False), (99, False), (100, True),
                                                 (5000, True)])
def test_a_full_sync_splits_once_the_previous_run_counted_the_threshold(
    fake_openstack, provider, settings, previous, split
):
    settings.CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS = 100
    driver = get_driver(provider.cloud_sync_driver)
    if previous is not None:  # the provider's last succeeded full sync counted that many objects
        SyncRun.objects.create(cloudprovider=provider, kind=RunKind.FULL,
                               status=RunStatus.SUCCEEDED,
                               counts={"host": {"unchanged": previous - 1}, "flavor": {"created": 1}})
    run = runs.claim_run(provider, RunKind.FULL)
    expected = ["catalog", "servers", "ips"] if split else []
    assert split_module.parts_for(run, driver, provider.client_config) == expected
    # never a dry run or a catch-up, and never with the setting at 0
    for kind in (RunKind.DRY_RUN, RunKind.CATCH_UP):
        assert split_module.parts_for(SyncRun(cloudprovider=provider, kind=kind,
                                              started_at=run.started_at), driver, {}) == []
    settings.CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS = 0
    assert split_module.parts_for(run, driver, provider.client_config) == []
