"""Reading history by an object's external id.

History entries are not indexed by external id (``HistoryEntry.Meta``): an
object is found by its own row, tombstones included, whose unique
constraint is (provider, external id); once its tombstone was purged, by an
entry that deleted or hid it (``models.history.DELETING``: a "deleted"
entry, or a port hidden with its host, whose entry changed ``deleted_at``;
the partial index ``history_deleted``). Either gives the object's (kind,
pk), and its entries are read through the (kind, object pk) index. An
object's external id never changes, and a pk is never reused, so these are
exactly the entries that name the id, with two exceptions: an object
purged while history was off (no such entry), and entries recorded after
the deleting one (late news kept on the tombstone, at most the tombstone
window later) once history retention has removed the deleting entry.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Q

from sync.apply.applier import MODEL_FOR_KIND
from sync.models import CloudProvider, HistoryEntry
from sync.models.history import DELETING

__all__ = ["named"]


def named(external_id: str) -> Q:
    """History entries of every object (of any kind and provider) whose
    external id is ``external_id``: one query per inventory model and one
    of deleting entries, each on an index."""
    providers = list(CloudProvider.objects.values_list("pk", flat=True))
    objects: dict[str, set[int]] = defaultdict(set)
    for kind, model in MODEL_FOR_KIND.items():
        objects[kind.value].update(
            model.all_objects.filter(
                cloudprovider_id__in=providers, **{model.external_id_field: external_id}
            ).values_list("pk", flat=True)
        )
    deleting = HistoryEntry.objects.filter(
        DELETING, external_id=external_id, cloudprovider_id__in=providers
    ).order_by().values_list("kind", "object_pk")
    for kind, pk in deleting:
        objects[kind].add(pk)
    found = Q(pk__in=[])  # (no object: no entry)
    for kind, pks in objects.items():
        if pks:
            found |= Q(kind=kind, object_pk__in=sorted(pks))
    return found & Q(external_id=external_id)
