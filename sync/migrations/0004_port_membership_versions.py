"""Port membership as registers (docs/architecture.md, "Port membership is a
register"): a host's newest complete port list (``CloudHost.port_ids``), a
port's claim (``CloudPort.claimed_host``), its address set kept on the row
(``CloudPort.addresses``) and whether it is hidden only because its host was
deleted (``CloudPort.died_with_host``).

Existing rows are carried over as they stand: each port's claim is its
current host (with the version that set it, formerly
``field_versions["host_id"]``), its addresses are its address rows, and a
host that was given a complete list has the ports attached to it now as its
list. Existing tombstones stay terminal.
"""

from django.db import migrations, models
import django.db.models.deletion

CHUNK = 2000


def _chunks(qs):
    last = 0
    while True:
        rows = list(qs.filter(pk__gt=last).order_by("pk")[:CHUNK])
        if not rows:
            return
        yield rows
        last = rows[-1].pk


def carry_over(apps, schema_editor):
    CloudHost = apps.get_model("sync", "CloudHost")
    CloudPort = apps.get_model("sync", "CloudPort")
    CloudHostIP = apps.get_model("sync", "CloudHostIP")
    for rows in _chunks(CloudPort._base_manager.all()):
        addresses = {row.pk: [] for row in rows}
        ips = CloudHostIP._base_manager.filter(port_id__in=list(addresses))
        for port_id, *ip in ips.values_list("port_id", "address", "version", "kind", "mac"):
            addresses[port_id].append(list(ip))
        for row in rows:
            versions = dict(row.field_versions or {})
            if "host_id" in versions:
                versions["claimed_host_id"] = versions.pop("host_id")
            row.field_versions = versions
            row.claimed_host_id = row.host_id if not row.parent_port_id else None
            row.addresses = sorted(addresses[row.pk])
        CloudPort._base_manager.bulk_update(rows, ["field_versions", "claimed_host", "addresses"])
    listed = CloudHost._base_manager.filter(field_versions__has_key="port_ids")
    for rows in _chunks(listed):
        attached = {row.pk: [] for row in rows}
        ports = CloudPort._base_manager.filter(host_id__in=list(attached), parent_port_id="")
        for host_id, port_id in ports.values_list("host_id", "port_id"):
            attached[host_id].append(port_id)
        for row in rows:
            row.port_ids = sorted(attached[row.pk])
        CloudHost._base_manager.bulk_update(rows, ["port_ids"])


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0003_inbox_attempts_run_heartbeat"),
    ]

    operations = [
        migrations.AddField(
            model_name="cloudhost",
            name="port_ids",
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        migrations.AddField(
            model_name="cloudport",
            name="addresses",
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        migrations.AddField(
            model_name="cloudport",
            name="claimed_host",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="sync.cloudhost",
            ),
        ),
        migrations.AddField(
            model_name="cloudport",
            name="died_with_host",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.RunPython(carry_over, migrations.RunPython.noop),
    ]
