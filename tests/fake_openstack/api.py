"""Request handlers of the fake OpenStack: routing, auth, paging, rendering.

Kept apart from the HTTP plumbing (``server``) and the data (``data``).
Handlers return ``(status, payload, headers)``; payload is a JSON-able object
or pre-serialized bytes (cached pages).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tests.fake_openstack.data import Collection, MarkerNotFound, iso

if TYPE_CHECKING:
    from tests.fake_openstack.server import FakeOpenStack

Result = tuple[int, Any, dict[str, str]]

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    406: "Not Acceptable",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_NOVA_KEYS = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 406: "notAcceptable"}


def error(status: int, message: str | None, path: str) -> Result:
    """An error body in the style of the service that owns ``path``."""
    title = _TITLES.get(status, "Error")
    message = message or f"{title} (injected)"
    if path.startswith("/compute"):
        body: Any = {_NOVA_KEYS.get(status, "computeFault"): {"code": status, "message": message}}
    elif path.startswith("/network"):
        body = {"NeutronError": {"type": title.replace(" ", ""), "message": message, "detail": ""}}
    elif path.startswith("/image"):
        body = {"code": status, "title": title, "message": message}
    else:
        body = {"error": {"code": status, "title": title, "message": message}}
    return status, body, {}


def dispatch(
    fake: FakeOpenStack, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
) -> Result:
    p = path.rstrip("/")
    if method == "POST" and p == "/identity/v3/auth/tokens":
        return _issue_token(fake, body)
    if method == "GET" and p in _DISCOVERY:
        return _DISCOVERY[p](fake)
    if method != "GET":
        return error(404, f"fake has no route for {method} {path}", path)
    token = headers.get("X-Auth-Token")
    if not token or token not in fake.tokens:
        return error(401, "The request you have made requires authentication.", path)
    query = {**query, "_project_id": fake.tokens[token]}
    for pattern, handler in _ROUTES:
        m = pattern.fullmatch(p)
        if m:
            return handler(fake, query, headers, *m.groups())
    return error(404, f"fake has no route for GET {path}", path)


# -- discovery -------------------------------------------------------------------------
def _link(fake: FakeOpenStack, path: str) -> list[dict]:
    return [{"rel": "self", "href": fake.url + path}]


def _identity_version(fake: FakeOpenStack) -> dict:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": _link(fake, "/identity/v3/"),
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


def _compute_version(fake: FakeOpenStack) -> dict:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": fake.compute_max_microversion,
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": _link(fake, "/compute/v2.1/"),
    }


def _image_versions(fake: FakeOpenStack) -> Result:
    versions = [
        {
            "id": v,
            "status": "CURRENT" if v == "v2.16" else "SUPPORTED",
            "links": _link(fake, "/image/v2/"),
        }
        for v in ("v2.16", "v2.9", "v2.0")
    ]
    return 300, {"versions": versions}, {}


_DISCOVERY = {
    "/identity": lambda f: (300, {"versions": {"values": [_identity_version(f)]}}, {}),
    "/identity/v3": lambda f: (200, {"version": _identity_version(f)}, {}),
    "/compute": lambda f: (200, {"versions": [_compute_version(f)]}, {}),
    "/compute/v2.1": lambda f: (200, {"version": _compute_version(f)}, {}),
    "/image": _image_versions,
    "/image/v2": _image_versions,
    "/network": lambda f: (
        200,
        {"versions": [{"id": "v2.0", "status": "CURRENT", "links": _link(f, "/network/v2.0/")}]},
        {},
    ),
    "/network/v2.0": lambda f: (200, {"resources": []}, {}),
}


# -- keystone --------------------------------------------------------------------------
def _catalog(fake: FakeOpenStack) -> list[dict]:
    services = [
        ("identity", "keystone", "/identity"),
        ("compute", "nova", "/compute/v2.1"),
        ("image", "glance", "/image"),
        ("network", "neutron", "/network"),
    ]
    return [
        {
            "type": stype,
            "name": name,
            "id": f"{name}-service-id",
            "endpoints": [
                {
                    "id": f"{name}-{iface}",
                    "interface": iface,
                    "region": "RegionOne",
                    "region_id": "RegionOne",
                    "url": fake.url + prefix,
                }
                for iface in ("public", "internal", "admin")
            ],
        }
        for stype, name, prefix in services
        if stype not in fake.catalog_exclude
    ]


def _issue_token(fake: FakeOpenStack, raw: bytes) -> Result:
    unauthorized = error(401, "The request you have made requires authentication.", "/identity")
    if fake.reject_tokens:
        return unauthorized
    try:
        ident = json.loads(raw)["auth"]["identity"]
    except (ValueError, KeyError, TypeError):
        return error(400, "Expecting to find auth in request body.", "/identity")
    data = fake.data
    methods = ident.get("methods") or []
    project = data.admin_project
    if "password" in methods:
        user = ident.get("password", {}).get("user", {})
        key = (user.get("name"), (user.get("domain") or {}).get("name", "Default"))
        if data.users.get(key) is None or data.users[key] != user.get("password"):
            return unauthorized
    elif "application_credential" in methods:
        cred = ident.get("application_credential", {})
        if data.app_credentials.get(cred.get("id")) != cred.get("secret"):
            return unauthorized
    else:
        return unauthorized
    token = uuid.uuid4().hex
    with fake._lock:
        fake.tokens[token] = project["id"]
    now = data.clock
    body = {
        "token": {
            "methods": methods,
            "user": {
                "id": "admin-user-id",
                "name": "admin",
                "domain": {"id": "default", "name": "Default"},
                "password_expires_at": None,
            },
            "project": {
                "id": project["id"],
                "name": project["name"],
                "domain": {"id": "default", "name": "Default"},
            },
            "roles": [
                {"id": "admin-role", "name": "admin"},
                {"id": "member-role", "name": "member"},
            ],
            "catalog": _catalog(fake),
            "issued_at": iso(now),
            "expires_at": "2999-01-01T00:00:00.000000Z",
            "is_domain": False,
        }
    }
    return 201, body, {"X-Subject-Token": token}


def _projects(fake: FakeOpenStack, query: dict, headers: Any) -> Result:
    if fake.projects_forbidden:
        return error(
            403,
            "You are not authorized to perform the requested action: identity:list_projects.",
            "/identity",
        )
    with fake.data.lock:
        projects = [p for p in fake.data.projects.records.values() if not p["is_domain"]]
    links = {"self": fake.url + "/identity/v3/projects", "previous": None, "next": None}
    return 200, {"projects": projects, "links": links}, {}


# -- paging ----------------------------------------------------------------------------
def _limit(query: Mapping[str, str], default: int | None, cap: int | None) -> int | None:
    raw = query.get("limit")
    limit = int(raw) if raw not in (None, "") else default
    if limit is not None and cap is not None:
        limit = min(limit, cap)
    return limit


def _paged(
    fake: FakeOpenStack,
    name: str,
    coll: Collection,
    view_key: tuple,
    pred: Any,
    query: dict,
    limit: int | None,
    render: Any,
    envelope: Any,
    path: str,
) -> Result:
    """Serve one page through the page cache; a full page gets a next link."""
    marker = query.get("marker") or None
    with fake.data.lock:
        key = (name, coll.generation, view_key, marker, limit)

        def build() -> Any:
            items = coll.page(view_key, pred, marker, limit)
            nxt = None
            if limit is not None and len(items) == limit and items:
                nxt = f"{fake.url}{path}?limit={limit}&marker={items[-1]['id']}"
            return envelope([render(i) for i in items], nxt)

        try:
            return 200, fake.cached_page(key, build), {}
        except MarkerNotFound:
            return error(400, f"marker [{marker}] not found", path)


# -- nova ------------------------------------------------------------------------------
def _mv(value: str) -> tuple[int, int]:
    major, _, minor = value.partition(".")
    return int(major), int(minor or 0)


def _microversion(fake: FakeOpenStack, headers: Any) -> tuple[int, int] | None:
    raw = headers.get("OpenStack-API-Version") or ""
    value = raw.split()[-1] if raw.lower().startswith("compute") else None
    value = value or headers.get("X-OpenStack-Nova-API-Version") or "2.1"
    top = _mv(fake.compute_max_microversion)
    if value == "latest":
        return top
    try:
        mv = _mv(value)
    except ValueError:
        return None
    return mv if (2, 1) <= mv <= top else None


def _nova(handler: Any) -> Any:
    """Negotiate the microversion and set the response headers Nova sets."""

    def wrapped(fake: FakeOpenStack, query: dict, headers: Any, *args: str) -> Result:
        mv = _microversion(fake, headers)
        if mv is None:
            return error(
                406,
                f"Version not supported: maximum is {fake.compute_max_microversion}",
                "/compute",
            )
        status, payload, out = handler(fake, query, mv, *args)
        text = f"{mv[0]}.{mv[1]}"
        out = {
            **out,
            "OpenStack-API-Version": f"compute {text}",
            "X-OpenStack-Nova-API-Version": text,
            "Vary": "OpenStack-API-Version",
        }
        return status, payload, out

    return wrapped


def _render_server(fake: FakeOpenStack, rec: dict, mv: tuple[int, int]) -> dict:
    out = {k: v for k, v in rec.items() if k[0] != "_"}
    if mv < (2, 26):
        out.pop("tags", None)
    fl = rec["_flavor"]
    if mv >= (2, 47):
        out["flavor"] = {
            "vcpus": fl["vcpus"],
            "ram": fl["ram"],
            "disk": fl["disk"],
            "ephemeral": fl["OS-FLV-EXT-DATA:ephemeral"],
            "swap": fl["swap"],
            "original_name": fl["name"],
            "extra_specs": fl["extra_specs"],
        }
    else:
        out["flavor"] = {"id": fl["id"], "links": fl["links"]}
    out["links"] = [{"rel": "self", "href": f"{fake.url}/compute/v2.1/servers/{rec['id']}"}]
    return out


@_nova
def _servers_detail(fake: FakeOpenStack, query: dict, mv: tuple[int, int]) -> Result:
    data = fake.data
    since_raw = query.get("changes-since")
    since = None
    if since_raw:
        from sync.changes import parse_timestamp

        since = parse_timestamp(since_raw)
        if since is None:
            return error(
                400, f"Invalid input for field/attribute changes-since: {since_raw}", "/compute"
            )
        since_text = iso(since)
    all_tenants = query.get("all_tenants", "0").lower() not in ("0", "false", "")
    tenant = query.get("tenant_id") or query.get("project_id")
    if not all_tenants:
        tenant = query["_project_id"]
    marker = query.get("marker")
    if marker and fake.nova_marker_bug:
        rec = data.servers.records.get(marker)
        if rec is not None and rec["_deleted"]:
            return error(400, f"marker [{marker}] not found", "/compute")

    def pred(rec: dict) -> bool:
        if since is not None:
            if rec["updated"] < since_text:
                return False
        elif rec["_deleted"]:
            return False
        return tenant is None or rec["tenant_id"] == tenant

    limit = _limit(query, fake.nova_max_limit, fake.nova_max_limit)
    bucket = (mv >= (2, 26), mv >= (2, 47))
    return _paged(
        fake,
        "servers",
        data.servers,
        ("detail", since_raw, all_tenants, tenant, bucket),
        pred,
        query,
        limit,
        lambda r: _render_server(fake, r, mv),
        lambda items, nxt: {
            "servers": items,
            **({"servers_links": [{"rel": "next", "href": nxt}]} if nxt else {}),
        },
        "/compute/v2.1/servers/detail",
    )


@_nova
def _server(fake: FakeOpenStack, query: dict, mv: tuple[int, int], sid: str) -> Result:
    with fake.data.lock:
        rec = fake.data.servers.records.get(sid)
        if rec is None or rec["_deleted"]:
            return error(404, f"Instance {sid} could not be found.", "/compute")
        return 200, {"server": _render_server(fake, rec, mv)}, {}


def _render_flavor(rec: dict, mv: tuple[int, int]) -> dict:
    out = dict(rec)
    if mv < (2, 61):
        out.pop("extra_specs")
    if mv < (2, 55):
        out.pop("description")
    if mv < (2, 75) and not out["swap"]:
        out["swap"] = ""
    return out


@_nova
def _flavors_detail(fake: FakeOpenStack, query: dict, mv: tuple[int, int]) -> Result:
    is_public = (query.get("is_public") or "true").lower()
    if is_public in ("none", "all"):
        want = None
    else:
        want = is_public in ("1", "true", "t", "yes", "y", "on")

    def pred(rec: dict) -> bool:
        return want is None or rec["os-flavor-access:is_public"] == want

    limit = _limit(query, fake.nova_max_limit, fake.nova_max_limit)
    return _paged(
        fake,
        "flavors",
        fake.data.flavors,
        ("detail", want, mv >= (2, 61), mv >= (2, 55)),
        pred,
        query,
        limit,
        lambda r: _render_flavor(r, mv),
        lambda items, nxt: {
            "flavors": items,
            **({"flavors_links": [{"rel": "next", "href": nxt}]} if nxt else {}),
        },
        "/compute/v2.1/flavors/detail",
    )


@_nova
def _flavor(
    fake: FakeOpenStack, query: dict, mv: tuple[int, int], fid: str, sub: str | None
) -> Result:
    rec = fake.data.flavors.records.get(fid)
    if rec is None:
        return error(404, f"Flavor {fid} could not be found.", "/compute")
    if sub:
        return 200, {"extra_specs": dict(rec["extra_specs"])}, {}
    return 200, {"flavor": _render_flavor(rec, mv)}, {}


# -- glance ----------------------------------------------------------------------------
_OPS = {"gt": str.__gt__, "gte": str.__ge__, "lt": str.__lt__, "lte": str.__le__, "eq": str.__eq__}


def _images(fake: FakeOpenStack, query: dict, headers: Any) -> Result:
    from sync.changes import parse_timestamp

    conds = []
    for field in ("updated_at", "created_at"):
        if query.get(field):
            op, _, value = query[field].partition(":")
            when = parse_timestamp(value)
            if op not in _OPS or when is None:
                return error(400, f"Invalid {field} filter: {query[field]}", "/image")
            conds.append((field, _OPS[op], iso(when)))
    hidden = query.get("os_hidden", "false").lower() == "true"
    visibility = query.get("visibility")

    def pred(rec: dict) -> bool:
        if bool(rec.get("os_hidden")) != hidden:
            return False
        if visibility not in (None, "all") and rec["visibility"] != visibility:
            return False
        return all(fn(rec[f], v) for f, fn, v in conds)

    # The store is sorted by (updated_at, id) ascending, the sort we support.
    sort_dir = query.get("sort_dir") or (query.get("sort", "").partition(":")[2]) or "asc"
    if sort_dir != "asc":
        return error(400, "the fake only supports sort=updated_at:asc", "/image")
    limit = _limit(query, fake.glance_default_limit, fake.glance_max_limit)
    view = ("images", tuple(conds), hidden, visibility)

    def envelope(items: list, nxt: str | None) -> dict:
        out = {"images": items, "first": "/v2/images", "schema": "/v2/schemas/images"}
        if nxt:
            out["next"] = "/v2/images?" + nxt.partition("?")[2]
        return out

    return _paged(
        fake,
        "images",
        fake.data.images,
        view,
        pred,
        query,
        limit,
        dict,
        envelope,
        "/image/v2/images",
    )


def _image(fake: FakeOpenStack, query: dict, headers: Any, iid: str) -> Result:
    rec = fake.data.images.records.get(iid)
    if rec is None:
        return error(404, f"No image found with ID {iid}", "/image")
    return 200, rec, {}


# -- neutron ---------------------------------------------------------------------------
def _neutron(name: str, attr: str, path: str) -> Any:
    def handler(fake: FakeOpenStack, query: dict, headers: Any) -> Result:
        limit = _limit(query, None, None)
        return _paged(
            fake,
            name,
            getattr(fake.data, attr),
            (name,),
            lambda r: True,
            query,
            limit,
            dict,
            lambda items, nxt: {
                name: items,
                **({f"{name}_links": [{"rel": "next", "href": nxt}]} if nxt else {}),
            },
            path,
        )

    return handler


_ROUTES = [
    (re.compile(r"/identity/v3/projects"), _projects),
    (re.compile(r"/compute/v2\.1/servers/detail"), _servers_detail),
    (re.compile(r"/compute/v2\.1/servers/([^/]+)"), _server),
    (re.compile(r"/compute/v2\.1/flavors/detail"), _flavors_detail),
    (re.compile(r"/compute/v2\.1/flavors/([^/]+)(?:/(os-extra_specs))?"), _flavor),
    (re.compile(r"/image/v2/images"), _images),
    (re.compile(r"/image/v2/images/([^/]+)"), _image),
    (re.compile(r"/network/v2\.0/ports"), _neutron("ports", "ports", "/network/v2.0/ports")),
    (
        re.compile(r"/network/v2\.0/floatingips"),
        _neutron("floatingips", "floating_ips", "/network/v2.0/floatingips"),
    ),
]
