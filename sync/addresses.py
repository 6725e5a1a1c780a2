"""IP addresses and the ports that carry them, for ``sync.apply``.

A ``CloudPort`` is a network attachment (Neutron port, AWS ENI, floating IP
``fip:<id>`` bound to a port); ``CloudHostIP`` rows are its addresses, or a
host's own port-less addresses. These functions keep the rows' ``host`` right
when hosts are deleted, ports detached, or floating IPs re-bound.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from django.db import connections, models
from django.db.models import OuterRef, Subquery

from sync.choices import HostIPKindChoices
from sync.models import CloudHostIP, CloudPort, CloudProvider, SyncedModel

__all__ = [
    "address_rows",
    "detach_deleted_hosts",
    "detach_missing_ports",
    "relink_ports",
    "write_addresses",
]


def address_rows(addresses: Any) -> list[tuple[str, int, str, str]]:
    """Normalize an ``addresses`` list to sorted (address, version, kind, mac)."""
    out = set()
    for item in addresses or ():
        if isinstance(item, str):
            item = {"address": item}
        try:
            ip = ipaddress.ip_address(str(item.get("address", "")).strip())
        except ValueError:
            continue  # a garbage address is dropped, not fatal to the whole change
        kind = item.get("kind") or HostIPKindChoices.FIXED
        if kind not in HostIPKindChoices.values:
            kind = HostIPKindChoices.FIXED
        out.add((str(ip), ip.version, kind, str(item.get("mac") or "").lower()))
    return sorted(out)


def detach_missing_ports(
    provider: CloudProvider, port_sets: dict[int, tuple[list[str], str]], now: datetime
) -> None:
    """A host's complete port list (``port_ids``) detaches the ports it no
    longer names, unless a newer change attached them."""
    detached: list[int] = []
    for host_pk, (ids, version) in port_sets.items():
        ports = CloudPort.objects.filter(host_id=host_pk, parent_port_id="").exclude(
            port_id__in=ids
        )
        # Locked: a concurrent port event may be re-attaching one of them.
        for port in ports.select_for_update().order_by("pk").only("pk", "field_versions"):
            versions = dict(port.field_versions or {})
            if versions.get("host_id", "") > version:
                continue
            versions["host_id"] = version
            CloudPort.all_objects.filter(pk=port.pk).update(
                host_id=None, field_versions=versions, modified_at=now
            )
            detached.append(port.pk)
    if detached:
        port_ids = CloudPort.all_objects.filter(pk__in=detached).values("port_id")
        fips = CloudPort.all_objects.filter(cloudprovider=provider, parent_port_id__in=port_ids)
        fip_pks = list(fips.values_list("pk", flat=True))
        fips.update(host_id=None, modified_at=now)
        CloudHostIP.objects.filter(port_id__in=[*detached, *fip_pks]).update(host_id=None)


def detach_deleted_hosts(pks: list[int], now: datetime) -> None:
    """A deleted host takes its ports' addresses with it (the ENI or port
    died with the VM); floating IPs bound to it stay, unattached."""
    if not pks:
        return
    ports = CloudPort.all_objects.filter(host_id__in=pks)
    ports.exclude(parent_port_id="").update(host_id=None, modified_at=now)
    ports.filter(parent_port_id="", deleted_at__isnull=True).update(deleted_at=now, modified_at=now)
    ips = CloudHostIP.objects.filter(host_id__in=pks)
    ips.filter(port__isnull=False).exclude(port__parent_port_id="").update(host_id=None)
    ips.delete()


def write_addresses(
    for_hosts: bool, addresses: dict[int, list], by_pk: dict[int, SyncedModel]
) -> None:
    """Replace the address rows of hosts (their port-less set) or of ports."""
    pks = list(addresses)
    new_rows = []
    if for_hosts:
        CloudHostIP.objects.filter(host_id__in=pks, port__isnull=True).delete()
        for pk, addrs in addresses.items():
            new_rows += [
                CloudHostIP(host_id=pk, address=a, version=v, kind=k, mac=m) for a, v, k, m in addrs
            ]
    else:
        CloudHostIP.objects.filter(port_id__in=pks).delete()
        for pk, addrs in addresses.items():
            host_id = by_pk[pk].host_id if by_pk[pk].deleted_at is None else None
            new_rows += [
                CloudHostIP(port_id=pk, host_id=host_id, address=a, version=v, kind=k, mac=m)
                for a, v, k, m in addrs
            ]
    CloudHostIP.objects.bulk_create(new_rows)


def relink_ports(provider: CloudProvider, by_pk: dict[int, SyncedModel]) -> None:
    """Floating IPs follow the host of the port they are bound to."""
    ports = CloudPort.all_objects.filter(cloudprovider=provider)
    touched = [r.port_id for r in by_pk.values()]
    parent_host = Subquery(
        CloudPort.objects.filter(cloudprovider=provider, port_id=OuterRef("parent_port_id")).values(
            "host_id"
        )[:1]
    )
    floating = ports.exclude(parent_port_id="").filter(
        models.Q(port_id__in=touched) | models.Q(parent_port_id__in=touched)
    )
    fip_pks = list(floating.values_list("pk", flat=True))
    if fip_pks:
        CloudPort.all_objects.filter(pk__in=fip_pks).update(host_id=parent_host)
    all_pks = [*by_pk, *fip_pks]
    connection = connections[CloudHostIP.objects.db]
    if connection.vendor == "postgresql":
        # The same, but only rows whose host changes are rewritten (a
        # no-change full sync rewrote every address row).
        qn = connection.ops.quote_name
        ip, port = qn(CloudHostIP._meta.db_table), qn(CloudPort._meta.db_table)
        alive_host = "CASE WHEN p.deleted_at IS NULL THEN p.host_id END"
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {ip} AS i SET host_id = {alive_host} FROM {port} AS p "
                f"WHERE p.id = i.port_id AND i.port_id = ANY(%s) "
                f"AND i.host_id IS DISTINCT FROM {alive_host}",
                [all_pks],
            )
        return
    CloudHostIP.objects.filter(port_id__in=all_pks).update(
        host_id=Subquery(
            CloudPort.all_objects.filter(pk=OuterRef("port_id"), deleted_at__isnull=True).values(
                "host_id"
            )[:1]
        )
    )
