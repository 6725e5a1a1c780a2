"""EC2 objects -> Changes. Pure functions, no network: shared by the event
side (re-fetched instances, AWS Config items) and the full sync.

Rules (documented here because the event and listing sides must agree):

* ids: host = instance id, flavor = instance type name (``t3.micro``),
  image = AMI id, project = AWS account id, host_ip = ENI id.
* status: pending -> building; running -> active; stopping, stopped ->
  stopped; shutting-down -> stopped (the machine is going away and will never
  serve again, but it still exists until ``terminated``, which is a DELETE);
  terminated -> deleted (emitted as ``Op.DELETE``); anything else -> unknown.
* hostname: the ``Name`` tag, else the private DNS name, else (only for a
  complete DescribeInstances answer) the instance id.
* ``metadata`` = the tag dict plus ``aws:vpc_id`` / ``aws:subnet_id``;
  ``tags`` = the sorted tag keys (AWS tags are key/value pairs; the keys are
  what people filter on, the values live in metadata).
* hypervisor = the availability zone (AWS hides the physical host).
* one HOST_IP per ENI: private IPv4 (with MAC) and IPv6 are ``fixed``; the
  public IP or Elastic IP associated with it is ``floating``.

Both the boto3 shape (``InstanceType``) and AWS Config's camelCase shape
(``instanceType``) are read, so a Config item maps without conversion.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from sync.changes import Change, Kind, Op, Source, parse_timestamp
from sync.choices import HostStatusChoices as S

__all__ = [
    "STATE_RANK",
    "STATE_STATUS",
    "flavor_fields",
    "host_status",
    "image_fields",
    "instance_changes",
    "normalize_state",
    "state_rank",
]

# Ordering of EC2 lifecycle states, used as the second part of an event's
# version so that two events stamped with the same second apply in
# lifecycle order. 0 is "no state" (full sync, API-call events).
STATE_RANK: dict[str, int] = {
    "pending": 1,
    "running": 2,
    "stopping": 3,
    "stopped": 4,
    "shutting-down": 5,
    "terminated": 6,
}
STATE_STATUS: dict[str, str] = {
    "pending": S.BUILDING,
    "running": S.ACTIVE,
    "stopping": S.STOPPED,
    "stopped": S.STOPPED,
    "shutting-down": S.STOPPED,
    "terminated": S.DELETED,
}
UNAVAILABLE_IMAGE = "unavailable"  # AMI referenced but not describable (deregistered/unshared)


def normalize_state(value: Any) -> str | None:
    """``" RUNNING "``, ``"Shutting_Down"`` -> ``running``, ``shutting-down``."""
    if not isinstance(value, str) or not value.strip():
        return None
    return "-".join(value.strip().lower().replace("_", " ").replace("-", " ").split())


def state_rank(state: str | None) -> int:
    return STATE_RANK.get(state or "", 0)


def host_status(state: str | None) -> str:
    return STATE_STATUS.get(state or "", S.UNKNOWN)


def g(obj: Any, key: str, default: Any = None) -> Any:
    """Read ``Key`` (boto3) or ``key`` (AWS Config) from a dict."""
    if not isinstance(obj, Mapping):
        return default
    if key in obj:
        return obj[key]
    return obj.get(key[:1].lower() + key[1:], default)


def _iso(value: Any) -> str | None:
    """LaunchTime (a datetime from boto3, a string from AWS Config) as UTC ISO 8601."""
    parsed = parse_timestamp(value)
    return parsed.isoformat() if parsed else None


def tag_dict(instance: Mapping[str, Any], item_tags: Any = None) -> dict[str, str] | None:
    """Tags as a dict, or None when the source does not say (partial update)."""
    if isinstance(item_tags, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in item_tags.items()}
    tags = g(instance, "Tags")
    if not isinstance(tags, list):
        return None
    out: dict[str, str] = {}
    for tag in tags:
        key = g(tag, "Key")
        if isinstance(key, str):
            value = g(tag, "Value")
            out[key] = "" if value is None else str(value)
    return out


def flavor_fields(type_name: str, info: Mapping[str, Any] | None) -> dict[str, Any]:
    """A flavor from DescribeInstanceTypes: cores = default vCPUs, memory in
    MiB, disk = instance-store GiB (0 for EBS-only types)."""
    fields: dict[str, Any] = {"name": type_name, "is_public": True}
    if not info:
        return fields
    vcpu = info.get("VCpuInfo") or {}
    storage = info.get("InstanceStorageInfo") or {}
    fields["cores"] = int(vcpu.get("DefaultVCpus") or 0)
    fields["memory"] = int((info.get("MemoryInfo") or {}).get("SizeInMiB") or 0)
    fields["disk"] = int(storage.get("TotalSizeInGB") or 0)
    extra = {
        "architectures": list(
            (info.get("ProcessorInfo") or {}).get("SupportedArchitectures") or []
        ),
        "default_cores": vcpu.get("DefaultCores"),
        "threads_per_core": vcpu.get("DefaultThreadsPerCore"),
        "network_performance": (info.get("NetworkInfo") or {}).get("NetworkPerformance"),
        "current_generation": info.get("CurrentGeneration"),
        "hypervisor": info.get("Hypervisor"),
    }
    fields["extra_specs"] = {k: v for k, v in extra.items() if v not in (None, [])}
    return fields


def image_fields(info: Mapping[str, Any] | None) -> dict[str, Any]:
    """An image from DescribeImages; ``os_distro`` is PlatformDetails
    ("Linux/UNIX", "Red Hat Enterprise Linux", "Windows"...) else Platform."""
    if not info:
        return {"status": UNAVAILABLE_IMAGE}
    fields: dict[str, Any] = {}
    for target, key in (("name", "Name"), ("status", "State"), ("architecture", "Architecture")):
        if info.get(key):
            fields[target] = info[key]
    distro = info.get("PlatformDetails") or info.get("Platform")
    if distro:
        fields["os_distro"] = distro
    if "Public" in info:
        fields["visibility"] = "public" if info["Public"] else "private"
    root = info.get("RootDeviceName")
    for mapping in info.get("BlockDeviceMappings") or []:
        size = (mapping.get("Ebs") or {}).get("VolumeSize")
        if size and (mapping.get("DeviceName") == root or root is None):
            fields["min_disk"] = int(size)
            break
    return fields


def _ip_version(address: str) -> int:
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return 4


def eni_addresses(eni: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The addresses one ENI carries: private (fixed, with MAC) and public (floating)."""
    mac = g(eni, "MacAddress")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(address: Any, kind: str, with_mac: bool) -> None:
        if not isinstance(address, str) or not address or address in seen:
            return
        seen.add(address)
        entry: dict[str, Any] = {"address": address, "kind": kind, "version": _ip_version(address)}
        if with_mac and mac:
            entry["mac"] = mac
        out.append(entry)

    privates = g(eni, "PrivateIpAddresses")
    if isinstance(privates, list) and privates:
        for private in privates:
            add(g(private, "PrivateIpAddress"), "fixed", True)
    else:
        add(g(eni, "PrivateIpAddress"), "fixed", True)
    for v6 in g(eni, "Ipv6Addresses") or []:
        add(g(v6, "Ipv6Address") if isinstance(v6, Mapping) else v6, "fixed", True)
    if isinstance(privates, list):
        for private in privates:
            add(g(g(private, "Association"), "PublicIp"), "floating", False)
    add(g(g(eni, "Association"), "PublicIp"), "floating", False)
    return out


def instance_changes(
    instance: Mapping[str, Any],
    *,
    instance_id: str,
    state: str | None,
    version: str,
    source: Source = Source.EVENT,
    source_ref: str = "",
    owner: str | None = None,
    project_change: bool = True,
    types: Mapping[str, Mapping[str, Any]] | None = None,
    images: Mapping[str, Mapping[str, Any]] | None = None,
    item_tags: Any = None,
    availability_zone: str | None = None,
    complete: bool = True,
) -> list[Change]:
    """Changes for one instance: project, flavor, image, host, one host_ip per ENI.

    ``state`` is the EC2 state to report (the caller decides whether the
    event's or the re-fetched one); ``terminated`` gives a single host DELETE.
    ``types``/``images`` hold DescribeInstanceTypes/DescribeImages answers;
    when None the flavor and image are only referenced by id (apply makes
    placeholders). Fields the source does not carry are left out.
    """

    def change(kind: Kind, external_id: str, fields: dict[str, Any], op: Op = Op.UPSERT) -> Change:
        return Change(
            kind=kind,
            op=op,
            external_id=external_id,
            fields=fields,
            version=version,
            source=source,
            source_ref=source_ref,
        )

    if state == "terminated":
        return [change(Kind.HOST, instance_id, {}, Op.DELETE)]

    changes: list[Change] = []
    host: dict[str, Any] = {}
    if owner:
        if project_change:
            changes.append(change(Kind.PROJECT, owner, {"name": owner}))
        host["project"] = owner
    type_name = g(instance, "InstanceType")
    if isinstance(type_name, str) and type_name:
        if types is not None:
            changes.append(
                change(Kind.FLAVOR, type_name, flavor_fields(type_name, types.get(type_name)))
            )
        host["flavor"] = type_name
    image_id = g(instance, "ImageId")
    if isinstance(image_id, str) and image_id:
        if images is not None:
            changes.append(change(Kind.IMAGE, image_id, image_fields(images.get(image_id))))
        host["image"] = image_id

    tags = tag_dict(instance, item_tags)
    dns = g(instance, "PrivateDnsName")
    name = (tags or {}).get("Name")
    if name:
        host["hostname"] = name
    elif isinstance(dns, str) and dns:
        host["hostname"] = dns
    elif complete:
        host["hostname"] = instance_id
    if state:
        host["status"] = host_status(state)
    zone = g(g(instance, "Placement"), "AvailabilityZone") or availability_zone
    if isinstance(zone, str) and zone:
        host["hypervisor"] = zone
    if tags is not None:
        metadata: dict[str, str] = dict(tags)
        for key, source_key in (("aws:vpc_id", "VpcId"), ("aws:subnet_id", "SubnetId")):
            value = g(instance, source_key)
            if isinstance(value, str) and value:
                metadata[key] = value
        host["metadata"] = metadata
        host["tags"] = sorted(tags)
    launched = _iso(g(instance, "LaunchTime"))
    if launched:
        host["launched_at"] = launched
    changes.append(change(Kind.HOST, instance_id, host))

    enis = g(instance, "NetworkInterfaces")
    for eni in enis if isinstance(enis, list) else []:
        eni_id = g(eni, "NetworkInterfaceId")
        if isinstance(eni_id, str) and eni_id:
            changes.append(
                change(
                    Kind.HOST_IP,
                    eni_id,
                    {"host": instance_id, "port_id": eni_id, "addresses": eni_addresses(eni)},
                )
            )
    return changes
