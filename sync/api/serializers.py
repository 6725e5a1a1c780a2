"""API serializers: field declarations. Validation lives in the models'
``clean()`` (run through ``ValidatedModelSerializer``) or in ``sync`` services."""

from __future__ import annotations

import copy
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from sync.choices import SyncRunKindChoices
from sync.models import (
    CloudFlavor,
    CloudHost,
    CloudHostIP,
    CloudImage,
    CloudPort,
    CloudProject,
    CloudProvider,
    Event,
    HistoryEntry,
    PurgeRun,
    SyncedModel,
    SyncRun,
)
from sync.progress import PHASES

__all__ = [
    "SYNC_RUN_START_KINDS",
    "CloudFlavorSerializer",
    "CloudHostSerializer",
    "CloudImageSerializer",
    "CloudPortSerializer",
    "CloudProjectSerializer",
    "CloudProviderCreatedSerializer",
    "CloudProviderEndpointSerializer",
    "CloudProviderSerializer",
    "EventReplaySerializer",
    "EventSerializer",
    "HistoryEntrySerializer",
    "PurgeRunSerializer",
    "RetentionSerializer",
    "SyncRunCreateSerializer",
    "SyncRunDetailSerializer",
    "SyncRunSerializer",
]

# What the API calls the model attributes it renames (nested/related representations).
API_NAMES = {"cloudflavor": "flavor", "ips": "ip_addresses"}


def inventory_fields(model: type[SyncedModel]) -> list[str]:
    """``Meta.fields`` of a synced model: id, url, provider, external id, the
    synced fields (as the API names them), then the bookkeeping."""
    synced = [API_NAMES.get(name, name) for name in model.synced_fields]
    return ["id", "url", "provider", model.external_id_field, *synced, *model.bookkeeping_fields]


class ValidatedModelSerializer(serializers.ModelSerializer):
    """Runs the model's ``full_clean()`` on the would-be instance (NetBox's
    pattern), so the API and the admin share one validation, and keeps the
    values ``clean()`` normalized."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = copy.copy(self.instance) if self.instance else self.Meta.model()
        for name, value in attrs.items():
            setattr(instance, name, value)
        try:
            instance.full_clean(validate_unique=False)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        return {name: getattr(instance, name) for name in attrs}


# --- brief (nested) representations ----------------------------------------


class CloudProviderBriefSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:cloudprovider-detail")

    class Meta:
        model = CloudProvider
        fields = ["id", "url", "name"]


class CloudProjectBriefSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:cloudproject-detail")

    class Meta:
        model = CloudProject
        fields = ["id", "url", "project_id", "name"]


class CloudFlavorBriefSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:cloudflavor-detail")

    class Meta:
        model = CloudFlavor
        fields = ["id", "url", "flavor_id", "name"]


class CloudImageBriefSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:cloudimage-detail")

    class Meta:
        model = CloudImage
        fields = ["id", "url", "image_id", "name"]


# --- providers ----------------------------------------------------------------


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class DictKeysField(serializers.ReadOnlyField):
    """The sorted keys of a dict attribute (never its values)."""

    def to_representation(self, value: Any) -> list[str]:
        return sorted(value) if isinstance(value, dict) else []


@extend_schema_field(OpenApiTypes.URI)
class EndpointURLField(serializers.ReadOnlyField):
    """The provider's absolute webhook URL, built from the request."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", **kwargs)

    def to_representation(self, provider: CloudProvider) -> str:
        request = self.context.get("request")
        path = provider.get_endpoint_path()
        return request.build_absolute_uri(path) if request else path


class CloudProviderSerializer(ValidatedModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:cloudprovider-detail")
    client_config = serializers.JSONField(
        write_only=True,
        required=False,
        style={"base_template": "textarea.html"},
        help_text="Driver client configuration (credentials). Write-only: replaced as a whole, "
        "never returned; see client_config_keys.",
    )
    client_config_keys = DictKeysField(
        source="client_config", help_text="Keys set in client_config (values are never shown)."
    )
    events_queued = serializers.IntegerField(read_only=True)
    events_failed = serializers.IntegerField(read_only=True)
    events_dead = serializers.IntegerField(read_only=True)
    last_full_sync_run = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="Id of the latest full sync run."
    )
    last_full_sync_drift_healed = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="Drift healed by the latest full sync run."
    )

    class Meta:
        model = CloudProvider
        fields = [
            "id",
            "url",
            "name",
            "cloud_sync_enabled",
            "cloud_sync_driver",
            "client_config",
            "client_config_keys",
            "created_at",
            "modified_at",
            "last_event_received_at",
            "last_event_processed_at",
            "events_queued",
            "events_failed",
            "events_dead",
            "last_full_sync_at",
            "last_full_sync_status",
            "last_full_sync_run",
            "last_full_sync_drift_healed",
        ]
        read_only_fields = [
            "last_event_received_at",
            "last_event_processed_at",
            "last_full_sync_at",
            "last_full_sync_status",
        ]


class CloudProviderEndpointSerializer(serializers.ModelSerializer):
    """Where and how a producer posts events (shown on create and rotation only)."""

    endpoint_url = EndpointURLField()
    endpoint_secret = serializers.CharField(read_only=True)

    class Meta:
        model = CloudProvider
        fields = ["id", "endpoint_url", "endpoint_secret"]


class CloudProviderCreatedSerializer(CloudProviderSerializer):
    endpoint_url = EndpointURLField()
    endpoint_secret = serializers.CharField(read_only=True)

    class Meta(CloudProviderSerializer.Meta):
        fields = [*CloudProviderSerializer.Meta.fields, "endpoint_url", "endpoint_secret"]


# --- inventory (read-only) --------------------------------------------------


class CloudProjectSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:cloudproject-detail")
    provider = CloudProviderBriefSerializer(source="cloudprovider", read_only=True)

    class Meta:
        model = CloudProject
        fields = inventory_fields(CloudProject)


class CloudFlavorSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:cloudflavor-detail")
    provider = CloudProviderBriefSerializer(source="cloudprovider", read_only=True)

    class Meta:
        model = CloudFlavor
        fields = inventory_fields(CloudFlavor)


class CloudImageSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:cloudimage-detail")
    provider = CloudProviderBriefSerializer(source="cloudprovider", read_only=True)

    class Meta:
        model = CloudImage
        fields = inventory_fields(CloudImage)


class CloudHostIPSerializer(serializers.ModelSerializer):
    port_id = serializers.CharField(
        source="port.port_id", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = CloudHostIP
        fields = [*CloudHostIP.address_fields, "port_id"]


class CloudHostSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:cloudhost-detail")
    provider = CloudProviderBriefSerializer(source="cloudprovider", read_only=True)
    project = CloudProjectBriefSerializer(read_only=True, allow_null=True)
    flavor = CloudFlavorBriefSerializer(source="cloudflavor", read_only=True, allow_null=True)
    image = CloudImageBriefSerializer(read_only=True, allow_null=True)
    ip_addresses = CloudHostIPSerializer(source="ips", many=True, read_only=True)

    class Meta:
        model = CloudHost
        fields = inventory_fields(CloudHost)


# --- events -----------------------------------------------------------------


class EventSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:event-detail")
    provider = CloudProviderBriefSerializer(source="cloudprovider", read_only=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "url",
            "provider",
            "key",
            "event_type",
            "status",
            "attempts",
            "error",
            "occurred_at",
            "received_at",
            "processed_at",
            "result",
            "body",
        ]


class EventReplaySerializer(serializers.Serializer):
    """Answer of a replay request: the events reopened and queued."""

    replayed = serializers.ListField(child=serializers.IntegerField())
    count = serializers.IntegerField()
    remaining = serializers.IntegerField(
        help_text="Matching failed/dead events not replayed by this request (over the batch limit)."
    )


# --- sync runs ----------------------------------------------------------------


class SyncRunKindProgressSerializer(serializers.Serializer):
    """One kind's progress in a running (or finished) sync."""

    pages = serializers.IntegerField(
        read_only=True, help_text="Chunks of the listing (up to 1,000 objects) holding this kind.")
    seen = serializers.IntegerField(read_only=True, help_text="Objects of this kind listed so far.")
    applied = serializers.IntegerField(
        read_only=True, help_text="Objects of this kind applied to the inventory so far.")
    done = serializers.BooleanField(
        read_only=True, help_text="The listing moved past this kind (or ended).")


class SyncRunProgressSerializer(serializers.Serializer):
    """A sync's progress as it streams, updated at most once per
    CLOUDSYNC_RUN_PROGRESS_SECONDS while it runs; its final state once it
    ended. Empty for runs from before progress was recorded."""

    phase = serializers.ChoiceField(
        choices=[(p, p) for p in PHASES], read_only=True,
        help_text="listing (waiting for the cloud), applying (a chunk), finishing "
                  "(deletions, recording), done.")
    kinds = serializers.DictField(
        child=SyncRunKindProgressSerializer(), read_only=True,
        help_text="Per kind (host, port, flavor, image, project), in listing order.")
    seen = serializers.IntegerField(read_only=True, help_text="Objects listed so far (all kinds).")
    applied = serializers.IntegerField(read_only=True, help_text="Objects applied so far.")
    attempt = serializers.IntegerField(
        read_only=True, help_text="The run's attempt (retries list again from the start; "
                                  "while it runs, no figure drops below an earlier attempt's).")
    updated_at = serializers.DateTimeField(read_only=True, help_text="When this was written.")


class SyncRunSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:syncrun-detail")
    provider = CloudProviderBriefSerializer(source="cloudprovider", read_only=True)
    has_plan = serializers.BooleanField(read_only=True, help_text="A stored plan exists.")
    progress = SyncRunProgressSerializer(read_only=True)

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "url",
            "provider",
            "kind",
            "status",
            "started_at",
            "finished_at",
            "counts",
            "drift_healed",
            "drift",
            "error",
            "triggered_by",
            "has_plan",
            "progress",
        ]


class SyncRunDetailSerializer(SyncRunSerializer):
    class Meta(SyncRunSerializer.Meta):
        fields = [*SyncRunSerializer.Meta.fields, "plan"]


SYNC_RUN_START_KINDS = [
    (k.value, k.label)
    for k in (SyncRunKindChoices.FULL, SyncRunKindChoices.DRY_RUN, SyncRunKindChoices.CATCH_UP)
]


class SyncRunCreateSerializer(serializers.Serializer):
    """Request to start a run of one provider."""

    provider = serializers.PrimaryKeyRelatedField(queryset=CloudProvider.objects.all())
    kind = serializers.ChoiceField(
        choices=SYNC_RUN_START_KINDS,
        default=SyncRunKindChoices.FULL,
    )


# --- history and retention -------------------------------------------------------

# The API endpoint of each kind's objects (history entries link to them).
OBJECT_VIEWS = {
    "host": "api:cloudhost-detail",
    "flavor": "api:cloudflavor-detail",
    "image": "api:cloudimage-detail",
    "project": "api:cloudproject-detail",
    "host_ip": "api:cloudport-detail",
}


class HistoryEntrySerializer(serializers.ModelSerializer):
    """One change that altered an object: fields before → after, and why."""

    object_id = serializers.IntegerField(source="object_pk", read_only=True)
    object_url = serializers.SerializerMethodField()
    provider = serializers.IntegerField(source="cloudprovider_id", read_only=True)
    changes = serializers.JSONField(
        read_only=True, help_text="{field: [before, after]}; references by external id."
    )
    event_url = serializers.SerializerMethodField()
    run_url = serializers.SerializerMethodField()

    class Meta:
        model = HistoryEntry
        fields = [
            "id",
            "provider",
            "kind",
            "object_id",
            "object_url",
            "external_id",
            "applied_at",
            "action",
            "changes",
            "cause",
            "event",
            "event_url",
            "event_type",
            "occurred_at",
            "run",
            "run_url",
            "actor",
        ]

    def _url(self, name: str, pk: int | None) -> str | None:
        if pk is None:
            return None
        request = self.context.get("request")
        return reverse(name, kwargs={"pk": pk}, request=request)

    @extend_schema_field(OpenApiTypes.URI)
    def get_object_url(self, entry: HistoryEntry) -> str | None:
        return self._url(OBJECT_VIEWS[entry.kind], entry.object_pk)

    @extend_schema_field(OpenApiTypes.URI)
    def get_event_url(self, entry: HistoryEntry) -> str | None:
        """The inbox event (purged after its retention window: the id stays)."""
        return self._url("api:event-detail", entry.event_id)

    @extend_schema_field(OpenApiTypes.URI)
    def get_run_url(self, entry: HistoryEntry) -> str | None:
        return self._url("api:syncrun-detail", entry.run_id)


class CloudPortSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:cloudport-detail")
    provider = CloudProviderBriefSerializer(source="cloudprovider", read_only=True)
    host = serializers.SlugRelatedField(slug_field="host_id", read_only=True, allow_null=True)
    ip_addresses = CloudHostIPSerializer(source="ips", many=True, read_only=True)

    class Meta:
        model = CloudPort
        fields = ["id", "url", "provider", "port_id", "host", "parent_port_id", "ip_addresses",
                  "source_version", "last_synced_by", "deleted_at", "created_at", "modified_at"]


class PurgeRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = PurgeRun
        fields = ["id", "started_at", "finished_at", "settings", "removed", "batches", "error"]


class RetentionSerializer(serializers.Serializer):
    """The retention settings in force and the last purge."""

    settings = serializers.DictField(help_text="Each retention setting (days) and the batch size.")
    schedule = serializers.CharField(help_text="The purge's beat schedule (editable in the admin).",
                                     allow_null=True)
    last_purge = PurgeRunSerializer(allow_null=True)
