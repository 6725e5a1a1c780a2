"""The fake cloud's inventory: an in-memory, seedable store for the fake API.

Records are kept in the API's own JSON shapes so the HTTP layer only filters,
pages and serializes. Listings must stay cheap at 100k servers, so every
collection keeps a lazily built sort order and per-filter views (lists of
positions) that are reused until the collection changes; a marker is then one
dict lookup plus a bisect. Timestamps come from a fake clock that advances one
second per write, which makes ``changes-since`` tests deterministic.
"""

from __future__ import annotations

import bisect
import random
import threading
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["BASE_TIME", "Collection", "FakeCloud", "MarkerNotFound", "iso"]

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def iso(dt: datetime) -> str:
    """Second-precision UTC time as Nova, Glance and Neutron print it."""
    return dt.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


# Read-only parts shared by every server record (saves memory at 100k servers;
# the fake never mutates them in place).
_SECURITY_GROUPS = [{"name": "default"}]
_NO_VOLUMES: list = []


class MarkerNotFound(LookupError):
    """The page marker names no record of the collection."""


class Collection:
    """Records by id, plus cached sort order and filtered views.

    ``sort_key`` None keeps insertion order (what the fake Nova returns).
    """

    def __init__(self, sort_key: Callable[[dict], Any] | None = None) -> None:
        self.records: dict[str, dict] = {}
        self.sort_key = sort_key
        self.generation = 0
        self._order: list[str] | None = None
        self._pos: dict[str, int] = {}
        self._views: dict[Hashable, list[int]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def touch(self) -> None:
        """Invalidate cached orders and views after any write."""
        self.generation += 1
        self._order = None
        self._views.clear()

    def put(self, record: dict) -> dict:
        self.records[record["id"]] = record
        self.touch()
        return record

    def _ordered(self) -> list[str]:
        if self._order is None:
            ids = list(self.records)
            if self.sort_key is not None:
                ids.sort(key=lambda i: self.sort_key(self.records[i]))
            self._order = ids
            self._pos = {rid: n for n, rid in enumerate(ids)}
        return self._order

    def page(
        self,
        view_key: Hashable,
        predicate: Callable[[dict], bool],
        marker: str | None,
        limit: int | None,
    ) -> list[dict]:
        """Records after ``marker`` that pass ``predicate``, at most ``limit``.

        The marker may name a record outside the view (e.g. a deleted server),
        like Nova's marker lookup; an unknown marker raises MarkerNotFound.
        """
        order = self._ordered()
        view = self._views.get(view_key)
        if view is None:
            recs = self.records
            view = [n for n, rid in enumerate(order) if predicate(recs[rid])]
            self._views[view_key] = view
        start = 0
        if marker:
            pos = self._pos.get(marker)
            if pos is None:
                raise MarkerNotFound(marker)
            start = bisect.bisect_right(view, pos)
        stop = len(view) if limit is None else start + limit
        return [self.records[order[n]] for n in view[start:stop]]


class FakeCloud:
    """All objects of the fake cloud and helpers to seed and mutate them.

    Thread-safe through ``lock`` (the HTTP server holds it while it reads).
    """

    def __init__(self, seed: int = 42) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.clock = BASE_TIME
        self.servers = Collection()
        self.flavors = Collection(sort_key=lambda f: f["id"])
        self.images = Collection(sort_key=lambda i: (i["updated_at"], i["id"]))
        self.projects = Collection(sort_key=lambda p: p["id"])
        self.ports = Collection(sort_key=lambda p: p["id"])
        self.floating_ips = Collection(sort_key=lambda f: f["id"])
        self._seq = 0
        # Identity: one admin user/project; tokens are scoped to it.
        self.admin_project = self.add_project(name="admin", project_id="admin-project-id")
        self.users: dict[tuple[str, str], str] = {("admin", "Default"): "secret"}
        self.app_credentials: dict[str, str] = {"app-cred-id": "app-cred-secret"}

    # -- helpers -------------------------------------------------------------
    def tick(self, seconds: float = 1.0) -> datetime:
        """Advance the fake clock; every write calls it once."""
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def new_id(self) -> str:
        """A random (seeded, so reproducible) UUID4-shaped id."""
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _mac(self, n: int) -> str:
        return f"fa:16:3e:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}"

    def _ip(self, n: int) -> str:
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{(n & 255) or 1}"

    # -- identity ------------------------------------------------------------
    def add_project(
        self, name: str | None = None, project_id: str | None = None, **extra: Any
    ) -> dict:
        with self.lock:
            pid = project_id or self.new_id().replace("-", "")
            rec = {
                "id": pid,
                "name": name or f"project-{self._next():05d}",
                "domain_id": "default",
                "description": "",
                "enabled": True,
                "is_domain": False,
                "parent_id": "default",
                "tags": [],
                "options": {},
                "links": {"self": f"/identity/v3/projects/{pid}"},
            }
            rec.update(extra)
            return self.projects.put(rec)

    def add_projects(self, n: int) -> list[dict]:
        return [self.add_project() for _ in range(n)]

    # -- compute -------------------------------------------------------------
    def add_flavor(
        self,
        name: str | None = None,
        vcpus: int = 1,
        ram: int = 2048,
        disk: int = 20,
        flavor_id: str | None = None,
        extra_specs: dict[str, str] | None = None,
        is_public: bool = True,
    ) -> dict:
        with self.lock:
            n = self._next()
            fid = flavor_id or str(n)
            rec = {
                "id": fid,
                "name": name or f"m1.flavor-{n}",
                "vcpus": vcpus,
                "ram": ram,
                "disk": disk,
                "OS-FLV-EXT-DATA:ephemeral": 0,
                "swap": 0,
                "rxtx_factor": 1.0,
                "OS-FLV-DISABLED:disabled": False,
                "os-flavor-access:is_public": is_public,
                "description": None,
                "extra_specs": dict(extra_specs or {}),
                "links": [{"rel": "self", "href": f"/compute/v2.1/flavors/{fid}"}],
            }
            return self.flavors.put(rec)

    def add_flavors(self, n: int) -> list[dict]:
        return [
            self.add_flavor(vcpus=1 + i % 8, ram=1024 * (1 + i % 16), disk=10 * (1 + i % 5))
            for i in range(n)
        ]

    def add_server(self, **kw: Any) -> dict:
        return self.add_servers(1, **kw)[0]

    def add_servers(
        self,
        n: int,
        *,
        project_id: str | None = None,
        flavor: dict | None = None,
        image: dict | None | str = "auto",
        status: str = "ACTIVE",
        with_ports: bool = True,
        name_prefix: str = "vm",
        tags: list[str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> list[dict]:
        """Create ``n`` servers (and one port each unless ``with_ports`` is off).

        Flavor/image default to the first existing ones (created if missing);
        ``image=None`` makes boot-from-volume servers (image ``""``).
        Projects are spread round-robin over the non-admin projects.
        """
        with self.lock:
            if flavor is None:
                flavor = next(iter(self.flavors.records.values()), None) or self.add_flavor()
            if image == "auto":
                image = next(iter(self.images.records.values()), None) or self.add_image()
            projects = [p["id"] for p in self.projects.records.values() if p["name"] != "admin"]
            projects = projects or [self.admin_project["id"]]
            out = []
            for i in range(n):
                seq = self._next()
                now = iso(self.tick())
                sid = self.new_id()
                hv = f"compute-{seq % 50:02d}"
                rec = {
                    "id": sid,
                    "name": f"{name_prefix}-{seq:06d}",
                    "status": status,
                    "tenant_id": project_id or projects[i % len(projects)],
                    "user_id": "admin-user-id",
                    "metadata": dict(metadata or {}),
                    "hostId": f"{seq:056x}",
                    "image": {"id": image["id"]} if isinstance(image, dict) else "",
                    "created": now,
                    "updated": now,
                    "addresses": {},
                    "accessIPv4": "",
                    "accessIPv6": "",
                    "OS-DCF:diskConfig": "MANUAL",
                    "progress": 0,
                    "OS-EXT-AZ:availability_zone": "nova",
                    "config_drive": "",
                    "key_name": None,
                    "OS-SRV-USG:launched_at": now.replace("Z", ".000000"),
                    "OS-SRV-USG:terminated_at": None,
                    "OS-EXT-SRV-ATTR:host": hv,
                    "OS-EXT-SRV-ATTR:hypervisor_hostname": f"{hv}.example.org",
                    "OS-EXT-SRV-ATTR:instance_name": f"instance-{seq:08x}",
                    "OS-EXT-STS:task_state": None,
                    "OS-EXT-STS:vm_state": status.lower(),
                    "OS-EXT-STS:power_state": 1,
                    "os-extended-volumes:volumes_attached": _NO_VOLUMES,
                    "security_groups": _SECURITY_GROUPS,
                    "locked": False,
                    "description": None,
                    "tags": list(tags or []),
                    "_flavor": dict(flavor),  # Nova keeps a copy of the flavor
                    "_deleted": False,
                }
                self.servers.records[sid] = rec
                if with_ports:
                    self._add_port(seq, rec, now)
                out.append(rec)
            self.servers.touch()
            self.ports.touch()
            return out

    def _add_port(self, seq: int, server: dict, now: str) -> dict:
        ip, mac = self._ip(seq), self._mac(seq)
        pid = self.new_id()
        port = {
            "id": pid,
            "name": "",
            "network_id": "net-private",
            "tenant_id": server["tenant_id"],
            "project_id": server["tenant_id"],
            "mac_address": mac,
            "admin_state_up": True,
            "status": "ACTIVE",
            "device_id": server["id"],
            "device_owner": "compute:nova",
            "fixed_ips": [{"subnet_id": "subnet-private", "ip_address": ip}],
            "binding:host_id": server["OS-EXT-SRV-ATTR:host"],
            "created_at": now,
            "updated_at": now,
            "revision_number": 1,
            "tags": [],
        }
        self.ports.records[pid] = port
        server["addresses"] = {
            "private": [
                {
                    "version": 4,
                    "addr": ip,
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": mac,
                }
            ]
        }
        return port

    def add_port(self, device_owner: str = "network:dhcp", device_id: str = "") -> dict:
        """A non-server port (DHCP, router...) or one for an existing server."""
        with self.lock:
            seq = self._next()
            self.tick()
            server = self.servers.records.get(device_id)
            if server is not None:
                port = self._add_port(seq, server, iso(self.clock))
                port["device_owner"] = device_owner
            else:
                fake_server = {
                    "id": device_id,
                    "tenant_id": self.admin_project["id"],
                    "OS-EXT-SRV-ATTR:host": "",
                }
                port = self._add_port(seq, fake_server, iso(self.clock))
                port["device_owner"] = device_owner
            self.ports.touch()
            return port

    def add_floating_ip(self, port: dict | None = None) -> dict:
        with self.lock:
            seq = self._next()
            now = iso(self.tick())
            fid = self.new_id()
            rec = {
                "id": fid,
                "floating_ip_address": f"203.0.{(seq >> 8) & 255}.{(seq & 255) or 1}",
                "floating_network_id": "net-public",
                "router_id": "router-1" if port else None,
                "port_id": port["id"] if port else None,
                "fixed_ip_address": port["fixed_ips"][0]["ip_address"] if port else None,
                "status": "ACTIVE" if port else "DOWN",
                "tenant_id": self.admin_project["id"],
                "project_id": self.admin_project["id"],
                "description": "",
                "created_at": now,
                "updated_at": now,
                "revision_number": 1,
                "tags": [],
            }
            return self.floating_ips.put(rec)

    def update_server(self, server_id: str, **fields: Any) -> dict:
        """Change API fields of a server; bumps ``updated``."""
        with self.lock:
            rec = self.servers.records[server_id]
            rec.update(fields)
            if "status" in fields:
                rec["OS-EXT-STS:vm_state"] = str(fields["status"]).lower()
            rec["updated"] = iso(self.tick())
            self.servers.touch()
            return rec

    def delete_server(self, server_id: str) -> dict:
        """Soft-remove: hidden from listings, still seen by ``changes-since``
        with status DELETED (like Nova's deleted rows). Its ports go away."""
        with self.lock:
            rec = self.servers.records[server_id]
            rec.update(
                status="DELETED",
                _deleted=True,
                updated=iso(self.tick()),
                **{"OS-EXT-STS:vm_state": "deleted"},
            )
            self.servers.touch()
            for pid in [
                p["id"] for p in self.ports.records.values() if p["device_id"] == server_id
            ]:
                del self.ports.records[pid]
            self.ports.touch()
            return rec

    # -- image ---------------------------------------------------------------
    def add_image(self, name: str | None = None, **extra: Any) -> dict:
        with self.lock:
            n = self._next()
            now = iso(self.tick())
            iid = self.new_id()
            rec = {
                "id": iid,
                "name": name or f"image-{n:05d}",
                "status": "active",
                "visibility": "public",
                "os_distro": "ubuntu",
                "os_version": "22.04",
                "architecture": "x86_64",
                "min_disk": 0,
                "min_ram": 0,
                "size": 1 << 30,
                "disk_format": "qcow2",
                "container_format": "bare",
                "owner": self.admin_project["id"],
                "protected": False,
                "os_hidden": False,
                "tags": [],
                "checksum": f"{n:032x}",
                "created_at": now,
                "updated_at": now,
                "self": f"/v2/images/{iid}",
                "file": f"/v2/images/{iid}/file",
                "schema": "/v2/schemas/image",
            }
            rec.update(extra)
            return self.images.put(rec)

    def add_images(self, n: int) -> list[dict]:
        return [self.add_image() for _ in range(n)]

    def update_image(self, image_id: str, **fields: Any) -> dict:
        with self.lock:
            rec = self.images.records[image_id]
            rec.update(fields, updated_at=iso(self.tick()))
            self.images.touch()
            return rec

    def delete_image(self, image_id: str) -> None:
        with self.lock:
            del self.images.records[image_id]
            self.images.touch()
