"""A provider's whole inventory as comparable values: every row of every
inventory table (tombstones included), its synced fields, whether it is
deleted, and its references as external ids. Two providers synced from the
same cloud compare equal whatever their row ids and listing times."""

from __future__ import annotations

from typing import Any

from django.db import models

from sync.models import (
    CloudFlavor,
    CloudHost,
    CloudHostIP,
    CloudImage,
    CloudPort,
    CloudProject,
)

__all__ = ["inventory_of"]

MODELS = (CloudProject, CloudFlavor, CloudImage, CloudHost, CloudPort)
EXTRA = {CloudHost: ("port_ids",), CloudPort: ("claimed_host", "addresses", "died_with_host")}


def _value(row: models.Model, name: str) -> Any:
    field = row._meta.get_field(name)
    if isinstance(field, models.ForeignKey):
        target = getattr(row, name)
        return None if target is None else target.external_id
    if field.is_relation:  # reverse relations (host.ips): compared through CloudHostIP
        return None
    return getattr(row, name)


def inventory_of(provider) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in MODELS:
        rows = {}
        for row in model.all_objects.filter(cloudprovider=provider):
            fields = [f for f in (*model.synced_fields, *EXTRA.get(model, ())) if f != "ips"]
            rows[row.external_id] = {name: _value(row, name) for name in fields} | {
                "deleted": row.deleted_at is not None}
        out[model._meta.model_name] = rows
    out["cloudhostip"] = sorted(
        (ip.host.external_id if ip.host else None, ip.port.external_id if ip.port else None,
         *(str(getattr(ip, f)) for f in CloudHostIP.address_fields))
        for ip in CloudHostIP.objects.filter(host__cloudprovider=provider)
        .select_related("host", "port")
    )
    return out
