"""Event streams for the fault suite, built from Nova's versioned samples.

``nova_stream`` turns the upstream ``instance.*`` samples (loaded through
``tests.fixtures``, never edited) into N distinct notifications for M hosts:
per host a lifecycle (create, update, power off, interface attach, power on,
resize, ...), every message with its own ``message_id``, timestamp and
``updated_at``, the host's own instance uuid, name, tenant, ports, addresses
and MACs. The order of the returned list is the order the cloud emitted
them (time order), which is what a reference provider is fed.

``poison_messages`` builds the malformed variants of issue 10 (NUL bytes,
lone surrogates, deep nesting, huge strings, wrong types, bad dates,
negative sizes, numbers JSON cannot hold) as raw request bodies.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from tests.fixtures import load_nova_versioned

__all__ = ["Message", "Poison", "batch_body", "nova_stream", "poison_messages"]

NS = uuid.UUID("8f1d8a2e-6a8e-4a57-9a5b-cf0d5a1e0a10")
BASE_TIME = datetime(2024, 3, 1, 8, 0, 0, tzinfo=UTC)
SAMPLE_PORTS = ("ce531f90-199f-48c0-816c-13e38010b442", "88dae9fa-0dc6-49e3-8c29-3abc41e99ac9")
SAMPLE_ADDRESSES = ("192.168.1.3", "192.168.1.30")
# A host's life, one notification per step (cycled when a host gets more).
LIFECYCLE = (
    "instance-create-end.json",  # port A
    "instance-update.json",  # state_update "building", ip_addresses []: no ports
    "instance-power_off-end.json",
    "instance-interface_attach-end.json",  # ports A and B
    "instance-power_on-end.json",
    "instance-resize_finish-end.json",
    "instance-resize_confirm-end.json",
    "instance-interface_detach-end.json",  # port A only
    "instance-pause-end.json",
    "instance-unpause-end.json",
    "instance-reboot-end.json",
    "instance-suspend-end.json",
    "instance-resume-end.json",
)
DELETE = "instance-delete-end.json"
TENANTS = tuple(uuid.uuid5(NS, f"tenant-{i}").hex for i in range(7))


@dataclass(frozen=True)
class Message:
    """One notification: dedup key, host, step and the message itself."""

    key: str
    host: int
    step: int
    at: datetime
    message: dict[str, Any]

    @property
    def text(self) -> str:
        return json.dumps(self.message, separators=(",", ":"))


@cache
def _sample(name: str) -> str:
    return json.dumps(load_nova_versioned(name))


def _ts(when: datetime) -> tuple[str, str]:
    """(oslo message timestamp, payload ISO time)."""
    return when.strftime("%Y-%m-%d %H:%M:%S.%f"), when.strftime("%Y-%m-%dT%H:%M:%SZ")


def host_uuid(tag: str, host: int) -> str:
    return str(uuid.uuid5(NS, f"{tag}/host/{host}"))


def _rewrite(sample: str, tag: str, host: int, step: int, when: datetime,
             created: datetime) -> dict[str, Any]:
    message = json.loads(sample)
    data = message["payload"]["nova_object.data"]
    data["uuid"] = host_uuid(tag, host)
    name = f"vm-{tag}-{host:05d}"
    for key in ("display_name", "display_description", "host_name"):
        if key in data:
            data[key] = name
    data["tenant_id"] = data["action_initiator_project"] = TENANTS[host % len(TENANTS)]
    data["host"] = f"compute-{host % 13:02d}"
    _, iso = _ts(when)
    _, created_iso = _ts(created)
    for key in ("created_at", "launched_at"):
        if data.get(key):
            data[key] = created_iso
    for key in ("updated_at", "deleted_at", "terminated_at"):
        if data.get(key):
            data[key] = iso
    if "updated_at" in data and data["updated_at"] is None:
        data["updated_at"] = iso
    for ip in data.get("ip_addresses") or []:
        ipd = ip["nova_object.data"]
        which = SAMPLE_PORTS.index(ipd["port_uuid"]) if ipd["port_uuid"] in SAMPLE_PORTS else 2
        ipd["port_uuid"] = str(uuid.uuid5(NS, f"{tag}/port/{host}/{which}"))
        ipd["address"] = f"10.{host // 250 % 250}.{host % 250}.{3 + 27 * which}"
        ipd["mac"] = f"fa:16:3e:{host // 65536 % 256:02x}:{host // 256 % 256:02x}:{host % 256:02x}"
        ipd["device_name"] = "tap" + ipd["port_uuid"][:11]
    msg_ts, _ = _ts(when)
    message["message_id"] = str(uuid.uuid5(NS, f"{tag}/msg/{host}/{step}"))
    message["timestamp"] = msg_ts
    return message


def nova_stream(n: int, hosts: int, tag: str, delete_every: int = 10) -> list[Message]:
    """``n`` distinct notifications about ``hosts`` hosts, in emission order.

    Host ``h`` steps through ``LIFECYCLE`` one minute apart (hosts start 0.2 s
    apart); every ``delete_every``-th host's last notification is its
    ``instance.delete.end``."""
    hosts = max(1, min(hosts, n))
    per_host = [n // hosts + (1 if h < n % hosts else 0) for h in range(hosts)]
    out: list[Message] = []
    for h in range(hosts):
        created = BASE_TIME + timedelta(milliseconds=200 * h)
        for step in range(per_host[h]):
            last = step == per_host[h] - 1
            name = (DELETE if last and delete_every and h % delete_every == delete_every - 1
                    and step > 0 else LIFECYCLE[step % len(LIFECYCLE)])
            when = created + timedelta(minutes=step)
            message = _rewrite(_sample(name), tag, h, step, when, created)
            out.append(Message(message["message_id"], h, step, when, message))
    out.sort(key=lambda m: (m.at, m.host))
    return out


def batch_body(messages: list[Message]) -> bytes:
    return ("[" + ",".join(m.text for m in messages) + "]").encode()


# -- poison -------------------------------------------------------------------


@dataclass(frozen=True)
class Poison:
    """A malformed notification: ``text`` is the JSON text of the message as
    sent (raw, so it can hold what ``json.dumps`` would not write);
    ``must_400`` when the issue requires the endpoint itself to refuse it."""

    name: str
    key: str
    text: str
    must_400: bool = False
    raw: bytes | None = None  # bytes that are not even UTF-8

    def body(self) -> bytes:
        return self.raw if self.raw is not None else self.text.encode()


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def poison_messages(tag: str, first_host: int = 100_000) -> list[Poison]:
    """One poison per kind, each about a host of its own (so a poison that
    slipped through would show as an extra row in the inventory)."""
    out: list[Poison] = []
    created = BASE_TIME

    def base(i: int) -> tuple[dict[str, Any], str]:
        msg = _rewrite(_sample(LIFECYCLE[0]), tag, first_host + i, 0, created, created)
        return msg, msg["message_id"]

    def add(name: str, mutate, *, must_400: bool = False, raw_sub: tuple[str, str] | None = None,
            as_bytes: bool = False) -> None:
        msg, key = base(len(out))
        mutate(msg["payload"]["nova_object.data"], msg)
        text = json.dumps(msg, separators=(",", ":"))
        if raw_sub:
            assert raw_sub[0] in text, raw_sub
            text = text.replace(raw_sub[0], raw_sub[1])
        raw = text.encode("utf-8", "surrogatepass") if as_bytes else None
        out.append(Poison(name, key, text, must_400=must_400, raw=raw))

    def setter(path: tuple[str, ...], value: Any):
        def mutate(data: dict[str, Any], msg: dict[str, Any]) -> None:
            target = data
            for part in path[:-1]:
                target = target[part]
                if isinstance(target, dict) and "nova_object.data" in target:
                    target = target["nova_object.data"]
            target[path[-1]] = copy.deepcopy(value)
        return mutate

    flavor = ("flavor",)  # setter() unwraps nova_object.data itself
    add("nul-in-name", setter(("display_name",), "web\u0000-01"))
    add("nul-in-key", setter(("metadata",), {"k\u0000": "v"}))
    add("lone-surrogate-name", setter(("display_name",), "x\ud800y"))
    add("lone-low-surrogate-tag", setter(("tags",), ["\udfff"]))
    add("surrogate-raw-bytes", setter(("display_name",), "PLACEHOLDER-SURROGATE"),
        raw_sub=('"PLACEHOLDER-SURROGATE"', '"\ud800"'), as_bytes=True)
    add("invalid-utf8-bytes", setter(("display_name",), "PLACEHOLDER-BYTES"))
    bad = out[-1]
    out[-1] = Poison(bad.name, bad.key, bad.text,
                     raw=bad.text.encode().replace(b"PLACEHOLDER-BYTES", b"\xff\xfe\xc0"))
    add("nesting-1000", setter(("metadata",), "PLACEHOLDER-NEST"),
        raw_sub=('"PLACEHOLDER-NEST"', _nested(1000)), must_400=True)
    add("string-100k-name", setter(("display_name",), "n" * 100_000))
    add("string-100k-uuid", setter(("uuid",), "u" * 100_000))
    add("wrong-type-uuid", setter(("uuid",), ["not", "a", "uuid"]))
    add("wrong-type-state", setter(("state",), {"vm": "active"}))
    add("wrong-type-ips", setter(("ip_addresses",), "10.0.0.1"))
    add("wrong-type-memory", setter((*flavor, "memory_mb"), "lots"))
    add("wrong-type-payload", lambda d, m: m.update(payload=["instance"]))
    add("bad-date-all", lambda d, m: (
        m.update(timestamp="yesterday at noon"),
        d.update(updated_at="2024-13-45T99:99:99Z", launched_at="not a date",
                 created_at="32/01/2024"),
    ))
    # Sizes on the flavor the good traffic also embeds (a copy that may lose
    # to what is stored: the value is still wrong) and on a flavor of its own.
    def flavor_update(new_flavor: bool, **values: Any):
        def mutate(data: dict[str, Any], msg: dict[str, Any]) -> None:
            fl = data["flavor"]["nova_object.data"]
            fl.update(values)
            if new_flavor:
                fl["flavorid"] = str(uuid.uuid5(NS, f"{tag}/flavor/{msg['message_id']}"))
        return mutate

    add("negative-sizes-known-flavor", flavor_update(False, memory_mb=-512, vcpus=-1, root_gb=-20))
    add("negative-sizes-new-flavor", flavor_update(True, memory_mb=-512, vcpus=-1, root_gb=-20))
    add("huge-number-1e400", setter((*flavor, "memory_mb"), "PLACEHOLDER-HUGE"),
        raw_sub=('"PLACEHOLDER-HUGE"', "1e400"))
    add("huge-integer-known-flavor", flavor_update(False, vcpus=10 ** 400))
    add("huge-integer-new-flavor", flavor_update(True, vcpus=10 ** 400))
    add("bad-ip-address", lambda d, m: d["ip_addresses"][0]["nova_object.data"].update(
        address="999.1.2.3"))
    return out
