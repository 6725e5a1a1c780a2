"""OpenStack API objects (as listed by Nova, Glance, Neutron, Keystone) -> Changes.

Pure functions, no HTTP, so the rules are easy to read and test:

* External ids are the API ids: Nova server uuid, Nova *flavorid* (the
  ``id`` of ``/flavors``, not the database id), Glance image id, Keystone
  project id, Neutron port id; a floating IP is ``"fip:" + id`` so it can
  never collide with a port.
* ``version = make_version(updated_at, None)``: the object's own update time
  and no message timestamp, the same two-part shape as event versions
  (``make_version(updated_at, message_timestamp)``), so an event about the
  same update sorts after the listing and a newer update sorts after both.
  Objects without an update time (flavors, projects) use the time the run
  started: the listing shows a state at least that recent.
* A key the API did not return (policy-hidden ``OS-EXT-SRV-ATTR:host``,
  ``tags`` before microversion 2.26, a down-cell server's partial record) is
  left out of ``fields`` instead of being set to None: changes are partial
  updates, and "not shown" is not "empty".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sync.changes import SYNCED_FIELDS, Change, Kind, Op, Source, make_version, parse_timestamp
from sync.drivers.openstack.status import host_status

__all__ = [
    "floating_ip_change",
    "flavor_change",
    "flavor_id_of",
    "image_change",
    "port_change",
    "project_change",
    "server_change",
    "version_of",
]


def version_of(updated: Any, fallback: datetime | None) -> str:
    """The ordering key of a listed object (see the module docstring)."""
    return make_version(parse_timestamp(updated) or fallback, None)


def _ip_version(address: str) -> int:
    return 6 if ":" in address else 4


def project_change(project: Mapping[str, Any], source: Source, started: datetime) -> Change:
    return Change(
        kind=Kind.PROJECT,
        op=Op.UPSERT,
        external_id=str(project["id"]),
        fields={
            "name": project.get("name") or "",
            "domain": project.get("domain_id"),
            "enabled": bool(project.get("enabled", True)),
        },
        version=version_of(project.get("updated_at"), started),
        source=source,
    )


def flavor_change(
    flavor: Mapping[str, Any],
    source: Source,
    started: datetime,
    extra_specs: Mapping[str, Any] | None = None,
) -> Change:
    """``extra_specs`` overrides the embedded ones (fetched separately before 2.61)."""
    fields: dict[str, Any] = {
        "name": flavor.get("name") or "",
        "cores": flavor.get("vcpus"),
        "memory": flavor.get("ram"),
        "disk": flavor.get("disk"),
        "is_public": bool(flavor.get("os-flavor-access:is_public", True)),
    }
    specs = extra_specs if extra_specs is not None else flavor.get("extra_specs")
    if specs is not None:
        fields["extra_specs"] = dict(specs)
    return Change(
        kind=Kind.FLAVOR,
        op=Op.UPSERT,
        external_id=str(flavor["id"]),
        fields=fields,
        version=version_of(flavor.get("updated_at"), started),
        source=source,
    )


def image_change(image: Mapping[str, Any], source: Source, started: datetime) -> Change:
    # Glance omits unset properties: absent means "none" here, not "hidden".
    fields = {key: image.get(key) for key in SYNCED_FIELDS[Kind.IMAGE]}
    fields["name"] = fields["name"] or ""
    return Change(
        kind=Kind.IMAGE,
        op=Op.UPSERT,
        external_id=str(image["id"]),
        fields=fields,
        version=version_of(image.get("updated_at"), started),
        source=source,
    )


def flavor_id_of(
    server_flavor: Any, by_name: Callable[[str], str | None]
) -> str | None | type[Ellipsis]:
    """The flavorid of a server's flavor.

    Before microversion 2.47 the server shows ``{"id": flavorid}``. From 2.47
    on it shows a copy of the flavor with ``original_name`` only: flavor names
    are unique in Nova, so the listed flavor of that name gives the id. If no
    listed flavor has that name (it was deleted since), the id is unknowable:
    Ellipsis tells the caller to leave ``flavor`` out rather than clear it.
    """
    if not isinstance(server_flavor, Mapping):
        return None
    if server_flavor.get("id"):
        return str(server_flavor["id"])
    name = server_flavor.get("original_name")
    if not name:
        return ...
    found = by_name(str(name))
    return found if found is not None else ...


def server_change(
    server: Mapping[str, Any],
    by_name: Callable[[str], str | None],
    source: Source,
    started: datetime,
) -> Change:
    """A host upsert, or a delete for a server listed as DELETED (catch-up)."""
    version = version_of(server.get("updated"), started)
    status = server.get("status")
    if str(status).upper() == "DELETED":
        return Change(Kind.HOST, Op.DELETE, str(server["id"]), {}, version, source)
    fields: dict[str, Any] = {"status": str(host_status(status))}
    if "name" in server:
        fields["hostname"] = server.get("name") or ""
    if "tenant_id" in server:
        fields["project"] = server.get("tenant_id")
    if "OS-EXT-SRV-ATTR:host" in server:
        fields["hypervisor"] = server.get("OS-EXT-SRV-ATTR:host")
    if "tags" in server:
        fields["tags"] = list(server.get("tags") or [])
    if "metadata" in server:
        fields["metadata"] = dict(server.get("metadata") or {})
    if "OS-SRV-USG:launched_at" in server:
        launched = parse_timestamp(server.get("OS-SRV-USG:launched_at"))
        fields["launched_at"] = launched.isoformat() if launched else None
    if "image" in server:
        image = server.get("image")
        # Boot-from-volume servers show "" instead of an image object.
        fields["image"] = (
            str(image["id"]) if isinstance(image, Mapping) and image.get("id") else None
        )
    if "flavor" in server:
        flavor = flavor_id_of(server.get("flavor"), by_name)
        if flavor is not ...:
            fields["flavor"] = flavor
    return Change(Kind.HOST, Op.UPSERT, str(server["id"]), fields, version, source)


def port_change(port: Mapping[str, Any], source: Source, started: datetime) -> Change:
    """One Neutron port: its fixed IPs, attached to a server only for compute ports."""
    owner = str(port.get("device_owner") or "")
    mac = port.get("mac_address")
    addresses = []
    for fixed in port.get("fixed_ips") or ():
        address = fixed.get("ip_address") if isinstance(fixed, Mapping) else None
        if address:
            entry: dict[str, Any] = {
                "address": address,
                "kind": "fixed",
                "version": _ip_version(address),
            }
            if mac:
                entry["mac"] = mac
            addresses.append(entry)
    return Change(
        kind=Kind.HOST_IP,
        op=Op.UPSERT,
        external_id=str(port["id"]),
        fields={
            "host": (port.get("device_id") or None) if owner.startswith("compute:") else None,
            "port_id": str(port["id"]),
            "addresses": addresses,
        },
        version=version_of(port.get("updated_at"), started),
        source=source,
    )


def floating_ip_change(fip: Mapping[str, Any], source: Source, started: datetime) -> Change:
    """One floating IP; it reaches its host through ``port_id`` (None when detached)."""
    address = fip.get("floating_ip_address")
    port_id = fip.get("port_id") or None
    addresses = []
    if port_id and address:
        addresses.append({"address": address, "kind": "floating", "version": _ip_version(address)})
    return Change(
        kind=Kind.HOST_IP,
        op=Op.UPSERT,
        external_id=f"fip:{fip['id']}",
        fields={"host": None, "port_id": port_id, "addresses": addresses},
        version=version_of(fip.get("updated_at"), started),
        source=source,
    )
