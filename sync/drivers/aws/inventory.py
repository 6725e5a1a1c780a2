"""Full sync and connection test of the ``aws.ec2`` driver.

The listing is streamed: each DescribeInstances page yields the flavors and
images it introduces first (one DescribeInstanceTypes and one DescribeImages
per page, for new ids only), then its hosts and their ENIs. Any SDK error
raises out of the generator, so reconcile never sees a partial snapshot.

Version: AWS objects carry no ``updated_at``, so every change of a listing is
stamped ``make_version(<time the listing started>, 0)``. The start time (not
the end) is the safe choice: whatever a page shows happened no earlier than
that, and an event stamped after it — ``make_version(event time, state rank)``
— still wins, since it may describe a change the listing did not see.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sync.changes import Change, Kind, Op, Source, make_version
from sync.drivers.aws import mapping
from sync.drivers.aws.ec2 import (
    caller_identity,
    describe_images,
    describe_instance_types,
    get_clients,
    iter_instance_pages,
    own_images,
)
from sync.drivers.base import Snapshot

__all__ = ["KINDS", "list_inventory", "test_connection"]

KINDS = frozenset({Kind.HOST, Kind.FLAVOR, Kind.IMAGE, Kind.PROJECT, Kind.HOST_IP})
PAGE_SIZE = 1000  # DescribeInstances maximum



def list_inventory(config: Mapping[str, Any], *, page_size: int = PAGE_SIZE) -> Snapshot:
    """Every non-terminated instance of the region with the instance types,
    AMIs, account and ENIs they use, and the account's own AMIs. Unused
    instance types and other accounts' AMIs no instance uses are not
    inventory: they are not listed (reconcile removes them); nor are AMIs
    DescribeImages no longer returns."""
    started_at = datetime.now(UTC)
    clients = get_clients(config)  # fails here (not mid-stream) on bad credentials for a role
    version = make_version(started_at, 0)
    return Snapshot(
        changes=_stream(clients, version, page_size),
        kinds=KINDS,
        scopes=None,
        started_at=started_at,
        floors=dict.fromkeys(KINDS, version),  # nothing AWS lists has an update time
    )


def _stream(clients: Any, version: str, page_size: int) -> Iterator[Change]:
    def change(kind: Kind, external_id: str, fields: dict[str, Any]) -> Change:
        return Change(
            kind, Op.UPSERT, external_id, fields, version=version, source=Source.FULL_SYNC
        )

    account = caller_identity(clients)["account"]
    owners: set[str] = set()
    if account:
        owners.add(account)
        yield change(Kind.PROJECT, account, {"name": account})
    seen_types: set[str] = set()
    seen_images: set[str] = set()
    for page in iter_instance_pages(clients, page_size=page_size):
        new_types = {i["InstanceType"] for i, _ in page if i.get("InstanceType")} - seen_types
        new_images = {i["ImageId"] for i, _ in page if i.get("ImageId")} - seen_images
        if new_types:
            types = describe_instance_types(clients, new_types)
            for name in sorted(new_types):
                yield change(Kind.FLAVOR, name, mapping.flavor_fields(name, types.get(name)))
            seen_types |= new_types
        if new_images:
            images = describe_images(clients, new_images)
            # An AMI DescribeImages no longer returns (deregistered, no longer
            # shared) is not listed: the full sync deletes it, as its
            # `deregistered` event does; its instances keep referring to it.
            for image_id in sorted(new_images & images.keys()):
                yield change(Kind.IMAGE, image_id, mapping.image_fields(images[image_id]))
            seen_images |= new_images
        for instance, owner in page:
            if owner and owner not in owners:
                owners.add(owner)
                yield change(Kind.PROJECT, owner, {"name": owner})
            state = mapping.normalize_state((instance.get("State") or {}).get("Name"))
            if state == "terminated":  # raced with the filter
                continue
            yield from mapping.instance_changes(
                instance,
                instance_id=instance["InstanceId"],
                state=state,
                version=version,
                source=Source.FULL_SYNC,
                owner=owner or None,
                project_change=False,  # the account was emitted above, once
                types=None,  # flavors/images were emitted above, once per listing
                images=None,
            )
    # The account's own AMIs no instance uses (AMI events create them too):
    # listed, so that the full sync keeps them; an AMI it deregistered is not.
    for image_id, image in sorted(own_images(clients).items()):
        if image_id not in seen_images:
            yield change(Kind.IMAGE, image_id, mapping.image_fields(image))


def test_connection(config: Mapping[str, Any]) -> dict[str, Any]:
    """STS GetCallerIdentity and one small DescribeInstances page."""
    clients = get_clients(config)
    identity = caller_identity(clients)
    page = next(iter_instance_pages(clients, page_size=5), [])
    return {
        "region": clients.region,
        "account": identity["account"],
        "arn": identity["arn"],
        "instances_seen": len(page),
        "sample_instances": [i["InstanceId"] for i, _ in page][:5],
    }
