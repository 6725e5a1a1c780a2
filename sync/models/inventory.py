"""Synchronized inventory rows. Names follow Ralph's cloud models.

Every synced row carries its ordering key (``source_version``), when it was
last seen and by what, and a tombstone (``deleted_at``): a deleted object
keeps its row so a late event cannot resurrect it. The default manager hides
tombstones; ``all_objects`` sees them.
"""

from __future__ import annotations

from django.db import models

from sync.changes import SYNCED_FIELDS, Kind
from sync.choices import HostIPKindChoices, HostStatusChoices

__all__ = [
    "CloudFlavor",
    "CloudHost",
    "CloudHostIP",
    "CloudImage",
    "CloudPort",
    "CloudProject",
    "SyncedModel",
]


class AliveManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(deleted_at__isnull=True)


class SyncedModel(models.Model):
    """Bookkeeping shared by every synced row."""

    external_id_field: str = ""
    # The synced attributes, in the order the admin and the API show them
    # (the admin, the serializers and the filtersets derive their lists).
    synced_fields: tuple[str, ...] = ()
    # What sync records about a row, shown after its fields.
    bookkeeping_fields: tuple[str, ...] = (
        "source_version",
        "last_seen_at",
        "last_event_at",
        "last_synced_by",
        "deleted_at",
        "created_at",
        "modified_at",
    )

    # No index of its own: each model's unique constraint (cloudprovider,
    # external id) leads with it. A second, single-column index cost every
    # insert and every non-HOT update one more index write, and a planner
    # without statistics yet (a table that grew fast since its last ANALYZE)
    # picked it for "cloudprovider = P AND <external id> = ANY(...)" and
    # read every row of the provider instead of the few it asked for.
    cloudprovider = models.ForeignKey(
        "sync.CloudProvider", on_delete=models.CASCADE, db_index=False
    )
    source_version = models.CharField(max_length=80, blank=True, default="")
    # The version that last set each field: fields are last-writer-wins
    # registers, so any order of changes converges (an older change may still
    # set a field no newer change has touched).
    field_versions = models.JSONField(blank=True, default=dict, editable=False)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_synced_by = models.CharField(max_length=200, blank=True, default="")
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = AliveManager()
    all_objects = models.Manager()

    class Meta:
        abstract = True
        base_manager_name = "all_objects"

    @property
    def external_id(self) -> str:
        return getattr(self, self.external_id_field)

    @property
    def is_placeholder(self) -> bool:
        """Known only by reference so far (no change about it applied yet)."""
        return self.source_version == "" and self.deleted_at is None


class CloudProject(SyncedModel):
    """A project / tenant / account."""

    external_id_field = "project_id"
    synced_fields = SYNCED_FIELDS[Kind.PROJECT]
    project_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True, default="")
    domain = models.CharField(max_length=255, blank=True, default="")
    enabled = models.BooleanField(null=True, blank=True)

    class Meta(SyncedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["cloudprovider", "project_id"], name="uniq_project_id")
        ]

    def __str__(self) -> str:
        return self.name or self.project_id


class CloudFlavor(SyncedModel):
    """A flavor / instance type."""

    external_id_field = "flavor_id"
    synced_fields = SYNCED_FIELDS[Kind.FLAVOR]
    flavor_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True, default="")
    cores = models.PositiveIntegerField(null=True, blank=True)
    memory = models.PositiveIntegerField(null=True, blank=True, help_text="MiB")
    disk = models.PositiveIntegerField(null=True, blank=True, help_text="GiB")
    extra_specs = models.JSONField(blank=True, default=dict)
    is_public = models.BooleanField(null=True, blank=True)

    class Meta(SyncedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["cloudprovider", "flavor_id"], name="uniq_flavor_id")
        ]

    def __str__(self) -> str:
        return self.name or self.flavor_id


class CloudImage(SyncedModel):
    """An image / AMI."""

    external_id_field = "image_id"
    synced_fields = SYNCED_FIELDS[Kind.IMAGE]
    image_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=50, blank=True, default="")
    os_distro = models.CharField(max_length=100, blank=True, default="")
    os_version = models.CharField(max_length=100, blank=True, default="")
    architecture = models.CharField(max_length=50, blank=True, default="")
    min_disk = models.PositiveIntegerField(null=True, blank=True)
    min_ram = models.PositiveIntegerField(null=True, blank=True)
    visibility = models.CharField(max_length=50, blank=True, default="")

    class Meta(SyncedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["cloudprovider", "image_id"], name="uniq_image_id")
        ]

    def __str__(self) -> str:
        return self.name or self.image_id


class CloudHost(SyncedModel):
    """A virtual machine."""

    external_id_field = "host_id"
    # The change's fields as stored: references resolved to rows (and the raw
    # image id), ``addresses`` as the ``ips`` rows; ``port_ids`` is internal.
    synced_fields = (
        "hostname",
        "status",
        "project",
        "cloudflavor",
        "image",
        "image_ref",
        "hypervisor",
        "ips",
        "tags",
        "metadata",
        "launched_at",
    )
    host_id = models.CharField(max_length=255)
    # (db_index: a plain btree; migration 0015 dropped the varchar_pattern_ops
    # twin Django adds on Postgres: no query asks LIKE 'prefix%' of these
    # columns, and every insert and non-HOT update wrote it. Same below.)
    hostname = models.CharField(max_length=255, blank=True, default="", db_index=True)
    status = models.CharField(
        max_length=20, choices=HostStatusChoices.choices, default=HostStatusChoices.UNKNOWN
    )
    cloudflavor = models.ForeignKey(
        CloudFlavor, null=True, blank=True, on_delete=models.SET_NULL, related_name="hosts"
    )
    image = models.ForeignKey(
        CloudImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="hosts"
    )
    image_ref = models.CharField(max_length=255, blank=True, default="")
    project = models.ForeignKey(
        CloudProject, null=True, blank=True, on_delete=models.SET_NULL, related_name="hosts"
    )
    hypervisor = models.CharField(max_length=255, blank=True, default="", db_index=True)
    tags = models.JSONField(blank=True, default=list)
    metadata = models.JSONField(blank=True, default=dict)
    launched_at = models.DateTimeField(null=True, blank=True)
    # The ports named by the newest complete port list seen for this host
    # (its version: ``field_versions["port_ids"]``; none = never listed).
    # A register like any other field; ``CloudPort.host`` is decided from it
    # and the ports' own claims (sync.apply.addresses).
    port_ids = models.JSONField(blank=True, default=list, editable=False)

    class Meta(SyncedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["cloudprovider", "host_id"], name="uniq_host_id")
        ]

    def __str__(self) -> str:
        return self.hostname or self.host_id


class CloudPort(SyncedModel):
    """A network attachment that carries addresses: a Neutron port, an AWS
    ENI or a floating IP (``port_id`` "fip:<id>", bound to ``parent_port_id``).

    ``host`` is the attachment as it stands; it is derived (sync.apply.addresses)
    from registers that converge in any order: ``claimed_host`` (the host the
    newest statement about this port names, its own event's or a host's
    complete port list's; version ``field_versions["claimed_host_id"]``), the
    claimed host's own newest port list, and, for a floating IP, its port.
    """

    external_id_field = "port_id"
    synced_fields = ("host", "parent_port_id")  # what the admin shows; the rest is internal
    port_id = models.CharField(max_length=255)
    host = models.ForeignKey(
        CloudHost, null=True, blank=True, on_delete=models.SET_NULL, related_name="ports"
    )
    parent_port_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    claimed_host = models.ForeignKey(
        CloudHost,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    # The port's address set ([address, version, kind, mac] rows), kept while
    # the port is hidden with its deleted host so it can come back whole;
    # ``CloudHostIP`` rows are its visible copy.
    addresses = models.JSONField(blank=True, default=list, editable=False)
    # Tombstoned only because the host it is attached to was deleted (not by
    # its own delete): lifted if a newer statement attaches it elsewhere.
    died_with_host = models.BooleanField(default=False, editable=False)

    class Meta(SyncedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["cloudprovider", "port_id"], name="uniq_port_id")
        ]

    def __str__(self) -> str:
        return self.port_id


class CloudHostIP(models.Model):
    """One address of a host. Rows with a ``port`` come from that port;
    rows without one are the host's own address list (e.g. legacy Nova)."""

    # An address, in the order of an address row (sync.apply.addresses) and of
    # the admin and the API.
    address_fields: tuple[str, ...] = ("address", "version", "kind", "mac")

    host = models.ForeignKey(
        CloudHost, null=True, blank=True, on_delete=models.CASCADE, related_name="ips"
    )
    port = models.ForeignKey(
        CloudPort, null=True, blank=True, on_delete=models.CASCADE, related_name="ips"
    )
    address = models.GenericIPAddressField(db_index=True)
    version = models.PositiveSmallIntegerField(default=4)
    kind = models.CharField(
        max_length=10, choices=HostIPKindChoices.choices, default=HostIPKindChoices.FIXED
    )
    mac = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ["address"]

    def __str__(self) -> str:
        return self.address
