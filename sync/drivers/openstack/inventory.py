"""Full sync, catch-up and connection test of the OpenStack driver.

The SDK authenticates, finds endpoints, negotiates the compute microversion
and maps transport errors; listings are read as raw JSON pages through its
authenticated proxies and paginated here (DESIGN §8: 37x cheaper than SDK
resources). ``Snapshot.changes`` is a generator that streams page by page,
so 100k servers never sit in memory; any failure in the middle raises from
the generator (never a partial snapshot), naming the listing that failed.

Order of a full sync: projects (read eagerly: whether they can be listed
decides ``Snapshot.kinds``), flavors (their names resolve server flavors),
images, servers, ports, floating IPs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sync.changes import Change, Kind, Source
from sync.drivers.base import DriverError, Snapshot
from sync.drivers.openstack import mapping
from sync.drivers.openstack.config import validate_config
from sync.drivers.openstack.connection import translate_errors
from sync.drivers.openstack.pages import (
    Api,
    has_next,
    items_of,
    pages,
    parse_microversion,
    server_pages,
)

__all__ = ["PARTS", "list_changes_since", "list_inventory", "test_connection"]

log = logging.getLogger(__name__)

TEST_PAGE_SIZE = 100
EXTRA_SPECS_MICROVERSION = (2, 61)
SERVICES = ("identity", "compute", "image", "network")
PORT_FIELDS = ["id", "device_id", "device_owner", "mac_address", "fixed_ips", "updated_at"]
FIP_FIELDS = ["id", "floating_ip_address", "port_id", "updated_at"]


def _list_projects(api: Api) -> tuple[list[dict[str, Any]], bool]:
    """The projects and whether that list is complete. A 403 (credentials may
    not list projects) or a list Keystone truncated (``list_limit``) is not
    complete: PROJECT then stays out of the snapshot's kinds, so no project is
    deleted for being absent."""
    what = "listing projects"
    response = api.response("identity", "/projects", {}, what)
    if response.status_code == 403:
        log.info("%s: forbidden for these credentials; projects are not synced", what)
        return [], False
    body = api.json(response, what)
    projects = [p for p in items_of(body, "projects", what) if not p.get("is_domain")]
    if body.get("truncated"):
        log.warning("%s: Keystone truncated the list; absent projects are kept", what)
        return projects, False
    return projects, True


def _list_flavors(api: Api) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Every flavor (public and private) with its extra specs when readable."""
    what = "listing flavors"
    flavors = [
        f
        for page in pages(
            api,
            "compute",
            "/flavors/detail",
            {"is_public": "None"},
            what,
            "flavors",
            "flavors_links",
        )
        for f in page
    ]
    embedded = api.microversion and parse_microversion(api.microversion) >= EXTRA_SPECS_MICROVERSION
    out = []
    for flavor in flavors:
        specs = None
        if not embedded:
            path = f"/flavors/{quote(str(flavor['id']), safe='')}/os-extra_specs"
            response = api.response("compute", path, {}, what)
            if response.status_code not in (403, 404):  # policy may hide them: omit
                specs = api.json(response, what).get("extra_specs")
        out.append((flavor, specs))
    return out


class _FlavorNames:
    """name -> flavorid, loaded on first use (catch-ups rarely need it)."""

    def __init__(self, api: Api, flavors: list[dict[str, Any]] | None = None) -> None:
        self.api = api
        self.names = None if flavors is None else {str(f["name"]): str(f["id"]) for f in flavors}

    def __call__(self, name: str) -> str | None:
        if self.names is None:
            self.names = {str(f["name"]): str(f["id"]) for f, _ in _list_flavors(self.api)}
        return self.names.get(name)


def _image_pages(api: Api, params: Mapping[str, Any], what: str) -> Iterator[list[dict[str, Any]]]:
    """Visible images, then hidden ones (Glance's default listing omits
    ``os_hidden`` images; a full sync that missed them would delete them)."""
    base = {"sort_key": "updated_at", "sort_dir": "asc", "visibility": "all", **params}
    yield from pages(api, "image", "/images", base, what, "images", "next")
    yield from pages(api, "image", "/images", {**base, "os_hidden": "true"}, what, "images", "next")


def _stream(api: Api, parts: list[tuple[str, Callable[[], Iterator[Change]]]]) -> Iterator[Change]:
    """Chain the listings, closing the connection whatever happens."""
    try:
        for _name, part in parts:
            yield from part()
    finally:
        api.close()


def _open(config: Mapping[str, Any]) -> Api:
    api = Api(validate_config(config))
    try:
        api.authenticate()
        api.negotiate_compute()
    except BaseException:
        api.close()
        raise
    return api


# The parts a full sync can be split into (``Driver.list_parts``), each
# listing its kinds completely: the small catalog, then servers, then ports
# and floating IPs (the two big listings, about equal in size).
PARTS: dict[str, frozenset[Kind]] = {
    "catalog": frozenset({Kind.PROJECT, Kind.FLAVOR, Kind.IMAGE}),
    "servers": frozenset({Kind.HOST}),
    "ips": frozenset({Kind.HOST_IP}),
}


def list_inventory(config: Mapping[str, Any], part: str | None = None) -> Snapshot:
    """Everything the credentials can see, as a streaming Snapshot; with
    ``part`` (one of ``PARTS``), only that part's kinds.

    Authentication, compute discovery and the project listing happen now
    (their errors raise here); the rest streams when ``changes`` is iterated.
    """
    if part is not None and part not in PARTS:
        raise DriverError(f"unknown part {part!r} (parts: {', '.join(PARTS)})")
    started = datetime.now(UTC)
    api = _open(config)
    src = Source.FULL_SYNC
    wanted = PARTS[part] if part is not None else frozenset(Kind)
    projects: list[dict[str, Any]] = []
    complete = True
    if Kind.PROJECT in wanted:
        try:
            projects, complete = _list_projects(api)
        except BaseException:
            api.close()
            raise
    kinds = {Kind.HOST, Kind.FLAVOR, Kind.IMAGE, Kind.HOST_IP} | (
        {Kind.PROJECT} if complete else set()
    )
    server_params = {"all_tenants": "1"}

    def project_changes() -> Iterator[Change]:
        for project in projects:
            yield mapping.project_change(project, src, started)

    # A servers part resolves flavor names itself (listing flavors on first use).
    names = _FlavorNames(api, [] if Kind.FLAVOR in wanted else None)

    def flavor_changes() -> Iterator[Change]:
        flavors = _list_flavors(api)
        names.names = {str(f["name"]): str(f["id"]) for f, _ in flavors}
        for flavor, specs in flavors:
            yield mapping.flavor_change(flavor, src, started, specs)

    def image_changes() -> Iterator[Change]:
        for page in _image_pages(api, {}, "listing images"):
            for image in page:
                yield mapping.image_change(image, src, started)

    def server_changes() -> Iterator[Change]:
        for page in server_pages(api, server_params, "listing servers"):
            for server in page:
                yield mapping.server_change(server, names, src, started)

    def ip_changes() -> Iterator[Change]:
        for page in pages(
            api,
            "network",
            "/ports",
            {"fields": PORT_FIELDS},
            "listing ports",
            "ports",
            "ports_links",
        ):
            for port in page:
                yield mapping.port_change(port, src, started)
        for page in pages(
            api,
            "network",
            "/floatingips",
            {"fields": FIP_FIELDS},
            "listing floating IPs",
            "floatingips",
            "floatingips_links",
        ):
            for fip in page:
                yield mapping.floating_ip_change(fip, src, started)

    parts = [
        (Kind.PROJECT, project_changes),
        (Kind.FLAVOR, flavor_changes),
        (Kind.IMAGE, image_changes),
        (Kind.HOST, server_changes),
        (Kind.HOST_IP, ip_changes),
    ]
    chosen = [(kind.value, listing) for kind, listing in parts if kind in wanted]
    listed = frozenset(kinds & wanted)
    # Flavors and projects carry no update time: listed at ``started``.
    floors = {k: mapping.version_of(None, started) for k in (Kind.FLAVOR, Kind.PROJECT)
              if k in listed}
    return Snapshot(changes=_stream(api, chosen), kinds=listed, started_at=started,
                    floors=floors)


def _since_text(since: datetime) -> str:
    """Whole seconds, rounded down: a catch-up may overlap, never leave a gap."""
    when = since if since.tzinfo else since.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_changes_since(config: Mapping[str, Any], since: datetime) -> Snapshot:
    """Servers changed since ``since`` (deleted ones as DELETE changes, from
    Nova's ``changes-since``) and images updated since. ``kinds`` is empty:
    a catch-up never deletes anything for being absent."""
    started = datetime.now(UTC)
    api = _open(config)
    src = Source.CATCH_UP
    text = _since_text(since)
    names = _FlavorNames(api)

    def server_changes() -> Iterator[Change]:
        params = {"all_tenants": "1", "changes-since": text}
        for page in server_pages(api, params, "listing servers changed since " + text):
            for server in page:
                yield mapping.server_change(server, names, src, started)

    def image_changes() -> Iterator[Change]:
        for page in _image_pages(
            api, {"updated_at": "gte:" + text}, "listing images changed since " + text
        ):
            for image in page:
                yield mapping.image_change(image, src, started)

    parts = [("servers", server_changes), ("images", image_changes)]
    return Snapshot(changes=_stream(api, parts), kinds=frozenset(), started_at=started)


def test_connection(config: Mapping[str, Any]) -> dict[str, Any]:
    """Authenticate, check the catalog, read one page of every listing.

    Returns the endpoints, the negotiated compute microversion and how many
    objects of each kind the first page showed (``more`` says a next page
    exists; ``project`` is None when projects may not be listed).
    """
    cfg = validate_config(config)
    api = Api(cfg)
    try:
        api.authenticate()
        endpoints: dict[str, str] = {}
        interface, region = cfg.get("interface", "public"), cfg.get("region_name")
        for service in SERVICES:
            with translate_errors(f"looking up the {service} endpoint"):
                url = api.conn.endpoint_for(service, interface=interface, region_name=region)
            if not url:
                raise DriverError(
                    f"missing catalog entry: no {service} endpoint for interface {interface!r}"
                    + (f" in region {region!r}" if region else "")
                )
            endpoints[service] = url
        microversion = api.negotiate_compute()
        counts: dict[str, int | None] = {}
        more: dict[str, bool] = {}
        listings = [
            (
                Kind.HOST,
                "compute",
                "/servers/detail",
                {"all_tenants": "1"},
                "servers",
                "servers_links",
            ),
            (
                Kind.FLAVOR,
                "compute",
                "/flavors/detail",
                {"is_public": "None"},
                "flavors",
                "flavors_links",
            ),
            (Kind.IMAGE, "image", "/images", {"visibility": "all"}, "images", "next"),
            (Kind.HOST_IP, "network", "/ports", {"fields": PORT_FIELDS}, "ports", "ports_links"),
        ]
        for kind, service, path, params, key, links in listings:
            what = f"listing {key}"
            body = api.get(service, path, {**params, "limit": TEST_PAGE_SIZE}, what)
            counts[kind.value] = len(items_of(body, key, what))
            more[kind.value] = has_next(body, links)
        response = api.response("identity", "/projects", {}, "listing projects")
        warnings = []
        if response.status_code == 403:
            counts[Kind.PROJECT.value] = None
            warnings.append(
                "projects cannot be listed with these credentials; they will not be synced"
            )
        else:
            projects = items_of(
                api.json(response, "listing projects"), "projects", "listing projects"
            )
            counts[Kind.PROJECT.value] = len(projects)
        project_id = api.conn.current_project_id
    finally:
        api.close()
    return {
        "ok": True,
        "auth_url": cfg["auth_url"],
        "project_id": project_id,
        "region_name": cfg.get("region_name"),
        "interface": cfg.get("interface", "public"),
        "compute_microversion": microversion,
        "endpoints": endpoints,
        "counts": counts,
        "more": more,
        "warnings": warnings,
    }
