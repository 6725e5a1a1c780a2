"""API viewsets: they declare queryset, serializer and filterset; shared
behaviour (permissions, pagination, error mapping, 202 answers) lives in
``sync.api.base.BaseViewSet`` and the service functions of ``sync``."""

from __future__ import annotations

from typing import Any

from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django_celery_beat.models import PeriodicTask
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from sync import ingest, names, retention, runs
from sync import status as sync_status
from sync.api import filtersets, serializers
from sync.api.base import (
    ERROR_RESPONSES,
    Conflict,
    NewestFirstPagination,
    Pagination,
    ReadOnlyViewSet,
)
from sync.api.status import OverviewSerializer, ProviderStatusSerializer
from sync.choices import EventStatusChoices, SyncRunKindChoices, SyncRunStatusChoices
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
    SyncRun,
)

__all__ = [
    "CloudFlavorViewSet",
    "CloudHostViewSet",
    "CloudImageViewSet",
    "CloudPortViewSet",
    "CloudProjectViewSet",
    "CloudProviderViewSet",
    "EventViewSet",
    "HistoryEntryViewSet",
    "PurgeRunViewSet",
    "SyncRunViewSet",
]

REPLAY_BATCH = 5000


# --- providers ----------------------------------------------------------------


def _event_count(event_status: str) -> Coalesce:
    """Events of the outer provider in one status (served by the (provider, status) index)."""
    counted = (
        Event.objects.filter(cloudprovider=OuterRef("pk"), status=event_status)
        .order_by()
        .values("cloudprovider")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _latest_full_run(field: str) -> Subquery:
    latest = SyncRun.objects.filter(
        cloudprovider=OuterRef("pk"), kind=SyncRunKindChoices.FULL
    ).order_by("-started_at", "-id")
    return Subquery(latest.values(field)[:1])


STEP_PARAMETER = OpenApiParameter(
    "step", int, enum=list(sync_status.STEPS), default=300,
    description="Seconds per point of the event series.",
)


def _step(request: Request) -> int:
    value = request.query_params.get("step", "300")
    if not value.isdigit() or int(value) not in sync_status.STEPS:
        raise ValidationError({"step": f"one of {', '.join(map(str, sync_status.STEPS))}"})
    return int(value)


@extend_schema_view(
    list=extend_schema(
        summary="List cloud providers",
        responses={200: serializers.CloudProviderSerializer, **ERROR_RESPONSES},
    ),
    retrieve=extend_schema(summary="Get a cloud provider"),
    create=extend_schema(
        summary="Create a cloud provider",
        description="client_config is validated by the driver. The answer is the only one "
        "(with rotate-secret) that shows endpoint_url and endpoint_secret.",
        responses={201: serializers.CloudProviderCreatedSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "OpenStack provider",
                request_only=True,
                value={
                    "name": "openstack-waw1",
                    "cloud_sync_enabled": True,
                    "cloud_sync_driver": "openstack",
                    "client_config": {
                        "auth_url": "https://keystone.example.com/v3",
                        "username": "cloudsync",
                        "password": "…",
                        "project_name": "admin",
                    },
                },
            )
        ],
    ),
    update=extend_schema(summary="Replace a cloud provider"),
    partial_update=extend_schema(summary="Update a cloud provider"),
    destroy=extend_schema(summary="Delete a cloud provider and its inventory"),
)
class CloudProviderViewSet(
    mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, ReadOnlyViewSet
):
    queryset = CloudProvider.objects.annotate(
        events_queued=_event_count(EventStatusChoices.QUEUED),
        events_failed=_event_count(EventStatusChoices.FAILED),
        events_dead=_event_count(EventStatusChoices.DEAD),
        last_full_sync_run=_latest_full_run("pk"),
        last_full_sync_drift_healed=_latest_full_run("drift_healed"),
    )
    serializer_class = serializers.CloudProviderSerializer
    filterset_class = filtersets.CloudProviderFilterSet
    search_fields = ["name", "cloud_sync_driver"]
    ordering_fields = [
        "id",
        "name",
        "cloud_sync_driver",
        "created_at",
        "last_event_received_at",
        "last_full_sync_at",
    ]
    ordering = ["name"]
    action_permissions = {"rotate_secret": ["sync.change_cloudprovider"]}

    def get_serializer_class(self) -> type[BaseSerializer]:
        if self.action == "create":
            return serializers.CloudProviderCreatedSerializer
        if self.action == "rotate_secret":
            return serializers.CloudProviderEndpointSerializer
        return super().get_serializer_class()

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.save()
        # Reload with the annotated status fields for the answer.
        serializer.instance = self.get_queryset().get(pk=serializer.instance.pk)

    def perform_update(self, serializer: BaseSerializer) -> None:
        serializer.save()
        serializer.instance = self.get_queryset().get(pk=serializer.instance.pk)

    @extend_schema(
        summary="Rotate the endpoint secret",
        description="Generates a new endpoint secret (the old one stops working at once) and "
        "returns it with the endpoint URL. The secret is not shown again.",
        request=None,
        responses={200: serializers.CloudProviderEndpointSerializer, **ERROR_RESPONSES},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        provider = self.get_object()
        provider.rotate_secret()
        return Response(self.get_serializer(provider).data)

    @extend_schema(
        summary="Sync status of a provider",
        operation_id="cloud_providers_status",
        description="What the status page shows: events received / processed / ignored / "
        "failed / dead per step over the last 24 h with the received→processed lag (p50, p99), "
        "queue depths now, the inbox backlog (dead letters), the last full sync and the event "
        "coverage of the last 30 measured full syncs (docs/architecture.md).",
        parameters=[STEP_PARAMETER],
        responses={200: ProviderStatusSerializer, **ERROR_RESPONSES},
    )
    @action(detail=True, methods=["get"], url_path="status", pagination_class=None,
            filter_backends=[], queryset=CloudProvider.objects.all())
    def status(self, request: Request, pk: str | None = None) -> Response:
        provider = self.get_object()
        data = sync_status.provider_status(provider, step=_step(request))
        return Response(ProviderStatusSerializer(data).data)

    @extend_schema(
        summary="Sync status of every provider",
        operation_id="cloud_providers_status_overview",
        description="The overview: every provider's 24 h counts, lag, backlog and last full "
        "sync, and all providers' events together per step.",
        parameters=[STEP_PARAMETER],
        responses={200: OverviewSerializer, **ERROR_RESPONSES},
    )
    @action(detail=False, methods=["get"], url_path="status", url_name="status-overview",
            pagination_class=None, filter_backends=[], queryset=CloudProvider.objects.all())
    def status_overview(self, request: Request) -> Response:
        return Response(OverviewSerializer(sync_status.overview(step=_step(request))).data)



# --- inventory (read-only: the sync is the source of truth) ----------------------

INVENTORY_NOTE = (
    "Read-only: the synchronization is the source of truth, manual edits would be "
    "overwritten by the next event or full sync. Deleted objects are hidden unless "
    "include_deleted=true."
)


HISTORY_PARAMETERS = [
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Applied at or after"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Applied before"),
    OpenApiParameter("cause", OpenApiTypes.STR, many=True,
                     description="event, full, catch_up, snapshot, plan (repeatable)"),
    OpenApiParameter("action", OpenApiTypes.STR, many=True,
                     description="created, updated, deleted, restored (repeatable)"),
    OpenApiParameter("event", OpenApiTypes.INT, description="Caused by this inbox event id"),
    OpenApiParameter("run", OpenApiTypes.INT, description="Caused by this sync run id"),
    OpenApiParameter("event_type", OpenApiTypes.STR, description="Event type(s), comma-separated"),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Page size (default 50, at most 1000)"),
    OpenApiParameter("offset", OpenApiTypes.INT, description="Entries to skip"),
]


# ``GET <object>/history/``: the object's history entries, newest first,
# filterable by time range and cause, paginated. (A comment, not a docstring:
# drf-spectacular would show it on every operation of the viewsets.)
class WithHistory:

    history_kind = ""

    @extend_schema(
        summary="The object's history (what changed, when, and why)",
        description="Every change that altered the object, newest first: fields before → after "
        "(references by external id), when it was applied, and its cause (an inbox event with "
        "its type and occurrence time, a sync run, or a plan applied by an operator). Kept "
        "CLOUDSYNC_HISTORY_RETENTION_DAYS (365) days.",
        parameters=HISTORY_PARAMETERS,
        responses={200: serializers.HistoryEntrySerializer(many=True), **ERROR_RESPONSES},
        filters=False,
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=Pagination)
    def history(self, request: Request, pk: str | None = None) -> Response:
        obj = self.get_object()
        entries = HistoryEntry.objects.filter(kind=self.history_kind, object_pk=obj.pk)
        return history_page(self, request, entries)


def history_page(view: Any, request: Request, entries: QuerySet) -> Response:
    """A page of history entries filtered by the query (400 on a bad filter)."""
    params = request.query_params.copy()
    for name in ("kind", "object_id", "provider"):  # fixed by the URL
        params.pop(name, None)
    filterset = filtersets.HistoryEntryFilterSet(params, queryset=entries, request=request)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    qs = filterset.qs.order_by("-applied_at", "-id")
    page = view.paginate_queryset(qs)
    data = serializers.HistoryEntrySerializer(page, many=True, context={"request": request}).data
    return view.get_paginated_response(data)


@extend_schema_view(
    list=extend_schema(summary="List cloud projects", description=INVENTORY_NOTE),
    retrieve=extend_schema(summary="Get a cloud project"),
)
class CloudProjectViewSet(WithHistory, ReadOnlyViewSet):
    history_kind = "project"
    queryset = CloudProject.all_objects.select_related("cloudprovider")  # provider
    serializer_class = serializers.CloudProjectSerializer
    filterset_class = filtersets.CloudProjectFilterSet
    search_fields = ["project_id", "name", "domain"]
    ordering_fields = ["id", "project_id", "name", "created_at", "modified_at"]


@extend_schema_view(
    list=extend_schema(summary="List cloud flavors", description=INVENTORY_NOTE),
    retrieve=extend_schema(summary="Get a cloud flavor"),
)
class CloudFlavorViewSet(WithHistory, ReadOnlyViewSet):
    history_kind = "flavor"
    queryset = CloudFlavor.all_objects.select_related("cloudprovider")  # provider
    serializer_class = serializers.CloudFlavorSerializer
    filterset_class = filtersets.CloudFlavorFilterSet
    search_fields = ["flavor_id", "name"]
    ordering_fields = [
        "id",
        "flavor_id",
        "name",
        "cores",
        "memory",
        "disk",
        "created_at",
        "modified_at",
    ]


@extend_schema_view(
    list=extend_schema(summary="List cloud images", description=INVENTORY_NOTE),
    retrieve=extend_schema(summary="Get a cloud image"),
)
class CloudImageViewSet(WithHistory, ReadOnlyViewSet):
    history_kind = "image"
    queryset = CloudImage.all_objects.select_related("cloudprovider")  # provider
    serializer_class = serializers.CloudImageSerializer
    filterset_class = filtersets.CloudImageFilterSet
    search_fields = ["image_id", "name", "os_distro"]
    ordering_fields = ["id", "image_id", "name", "created_at", "modified_at"]


@extend_schema_view(
    list=extend_schema(
        summary="List cloud hosts",
        description=INVENTORY_NOTE
        + " ip= matches one address exactly; ip_cidr= matches hosts with any address "
        "inside the network (10.0.0.0/24, 2001:db8::/32).",
    ),
    retrieve=extend_schema(summary="Get a cloud host"),
)
class CloudHostViewSet(WithHistory, ReadOnlyViewSet):
    history_kind = "host"
    queryset = CloudHost.all_objects.select_related(
        "cloudprovider",  # provider
        "cloudflavor",  # flavor
        "image",  # image
        "project",  # project
    ).prefetch_related(
        # ip_addresses (port_id comes from the port)
        Prefetch("ips", queryset=CloudHostIP.objects.select_related("port")),
    )
    serializer_class = serializers.CloudHostSerializer
    filterset_class = filtersets.CloudHostFilterSet
    search_fields = ["hostname", "host_id", "hypervisor"]
    ordering_fields = [
        "id",
        "host_id",
        "hostname",
        "status",
        "hypervisor",
        "launched_at",
        "created_at",
        "modified_at",
    ]


@extend_schema_view(
    list=extend_schema(summary="List cloud ports (network attachments: Neutron ports, AWS "
                       "ENIs, floating IPs)", description=INVENTORY_NOTE),
    retrieve=extend_schema(summary="Get a cloud port"),
)
class CloudPortViewSet(WithHistory, ReadOnlyViewSet):
    history_kind = "host_ip"
    queryset = CloudPort.all_objects.select_related("cloudprovider", "host").prefetch_related(
        Prefetch("ips", queryset=CloudHostIP.objects.select_related("port")))
    serializer_class = serializers.CloudPortSerializer
    filterset_class = filtersets.CloudPortFilterSet
    search_fields = ["port_id"]
    ordering_fields = ["id", "port_id", "created_at", "modified_at"]


# --- history and retention -------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List history entries (every object)",
        description="What changed, when and why, across objects: e.g. ?event=<id> lists what "
        "an inbox event changed, ?run=<id> what a sync run changed.",
    ),
    retrieve=extend_schema(summary="Get a history entry"),
)
class HistoryEntryViewSet(ReadOnlyViewSet):
    queryset = HistoryEntry.objects.all()
    serializer_class = serializers.HistoryEntrySerializer
    filterset_class = filtersets.HistoryEntryFilterSet
    # Newest first, keyset pages without a count: the table holds a year of
    # every change (COUNT(*) and deep OFFSETs over it would scan it).
    pagination_class = NewestFirstPagination
    ordering_fields: list[str] = []
    ordering = ["-applied_at", "-id"]


@extend_schema_view(
    list=extend_schema(summary="List retention purges (what each removed)"),
    retrieve=extend_schema(summary="Get a retention purge"),
)
class PurgeRunViewSet(ReadOnlyViewSet):
    queryset = PurgeRun.objects.all()
    serializer_class = serializers.PurgeRunSerializer
    filterset_class = filtersets.PurgeRunFilterSet
    ordering_fields = ["id", "started_at"]
    ordering = ["-started_at", "-id"]

    @extend_schema(
        summary="Retention settings and the last purge",
        responses={200: serializers.RetentionSerializer, **ERROR_RESPONSES},
        filters=False,
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def retention(self, request: Request) -> Response:
        task = PeriodicTask.objects.filter(task=names.PURGE).select_related("crontab").first()
        schedule = None
        if task is not None:
            schedule = f"{task.schedule}" + ("" if task.enabled else " (disabled)")
        data = {"settings": retention.retention_settings(), "schedule": schedule,
                "last_purge": retention.last_purge()}
        return Response(serializers.RetentionSerializer(data).data)


# --- events -------------------------------------------------------------------

REPLAY_EXAMPLE = OpenApiExample(
    "Replayed", value={"replayed": [41, 42], "count": 2, "remaining": 0}
)


@extend_schema_view(
    list=extend_schema(summary="List inbox events"),
    retrieve=extend_schema(summary="Get an inbox event"),
)
class EventViewSet(ReadOnlyViewSet):
    queryset = Event.objects.select_related("cloudprovider")  # provider
    serializer_class = serializers.EventSerializer
    filterset_class = filtersets.EventFilterSet
    search_fields = ["key", "event_type", "error"]
    ordering_fields = ["id", "received_at", "occurred_at", "processed_at", "status", "event_type"]
    ordering = ["-received_at", "-id"]
    action_permissions = {
        "replay": ["sync.view_event", "sync.change_event"],
        "replay_matching": ["sync.view_event", "sync.change_event"],
    }

    @extend_schema(
        summary="Replay one failed or dead event",
        operation_id="events_replay",
        request=None,
        responses={
            202: serializers.EventReplaySerializer,
            409: OpenApiResponse(description="Not failed/dead."),
            **ERROR_RESPONSES,
        },
        examples=[REPLAY_EXAMPLE],
    )
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str | None = None) -> Response:
        event = self.get_object()
        if event.status not in (EventStatusChoices.FAILED, EventStatusChoices.DEAD):
            raise Conflict(
                f"event {event.pk} is {event.status}; only failed or dead events can be replayed"
            )
        replayed = ingest.request_replay([event.pk])
        if not replayed:
            raise Conflict(f"event {event.pk} is no longer failed or dead")
        return self._replayed(replayed, remaining=0)

    @extend_schema(
        summary="Replay the failed and dead events matching the filters",
        operation_id="events_replay_matching",
        description=f"Takes the same filters as the list. At most {REPLAY_BATCH} events per "
        "request (oldest first); `remaining` tells how many are left: repeat the request.",
        request=None,
        responses={202: serializers.EventReplaySerializer, **ERROR_RESPONSES},
        examples=[REPLAY_EXAMPLE],
    )
    @action(detail=False, methods=["post"], url_path="replay", url_name="replay-matching")
    def replay_matching(self, request: Request) -> Response:
        matching = self.filter_queryset(self.get_queryset()).filter(
            status__in=(EventStatusChoices.FAILED, EventStatusChoices.DEAD)
        )
        ids = list(
            matching.order_by("received_at", "id").values_list("pk", flat=True)[: REPLAY_BATCH + 1]
        )
        remaining = max(0, matching.count() - REPLAY_BATCH) if len(ids) > REPLAY_BATCH else 0
        replayed = ingest.request_replay(ids[:REPLAY_BATCH]) if ids else []
        return self._replayed(replayed, remaining=remaining)

    def _replayed(self, ids: list[int], *, remaining: int) -> Response:
        data = {"replayed": ids, "count": len(ids), "remaining": remaining}
        return self.accepted(serializers.EventReplaySerializer(data))


# --- sync runs ------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List sync runs"),
    retrieve=extend_schema(summary="Get a sync run (with its stored plan)"),
)
class SyncRunViewSet(mixins.CreateModelMixin, ReadOnlyViewSet):
    queryset = SyncRun.objects.select_related("cloudprovider").annotate(  # provider
        has_plan=ExpressionWrapper(Q(plan__isnull=False), output_field=BooleanField())
    )
    serializer_class = serializers.SyncRunSerializer
    filterset_class = filtersets.SyncRunFilterSet
    ordering_fields = ["id", "started_at", "finished_at", "status", "kind", "drift_healed"]
    ordering = ["-started_at", "-id"]
    action_permissions = {"apply": ["sync.view_syncrun", "sync.change_syncrun"]}

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        return queryset if self.action in ("retrieve", "apply") else queryset.defer("plan")

    def get_serializer_class(self) -> type[BaseSerializer]:
        if self.action == "create":
            return serializers.SyncRunCreateSerializer
        if self.action in ("retrieve", "apply"):
            return serializers.SyncRunDetailSerializer
        return super().get_serializer_class()

    @extend_schema(
        summary="Start a sync run",
        description="Queues a full sync, dry run or catch-up of one provider. 409 while a run "
        "of that provider is running (one at a time), or when the provider cannot start one: "
        "cloud sync disabled, driver not installed, driver without full sync / catch-up.",
        request=serializers.SyncRunCreateSerializer,
        responses={
            202: serializers.SyncRunSerializer,
            409: OpenApiResponse(description="A run is already running, or the provider cannot "
                                 "start one (sync disabled, driver not installed, or unable "
                                 "to list)."),
            **ERROR_RESPONSES,
        },
        examples=[
            OpenApiExample("Dry run", request_only=True, value={"provider": 1, "kind": "dry_run"})
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        provider = serializer.validated_data["provider"]
        run = runs.start_run(
            provider, serializer.validated_data["kind"], triggered_by=self.triggered_by()
        )
        run = self.get_queryset().get(pk=run.pk)
        return self.accepted(
            serializers.SyncRunSerializer(run, context=self.get_serializer_context())
        )

    @extend_schema(
        summary="Apply the stored plan of a dry run or of a run needing approval",
        request=None,
        responses={
            202: serializers.SyncRunDetailSerializer,
            409: OpenApiResponse(description="The run has no plan that can be applied."),
            **ERROR_RESPONSES,
        },
    )
    @action(detail=True, methods=["post"])
    def apply(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        if run.status not in (SyncRunStatusChoices.NEEDS_APPROVAL, SyncRunStatusChoices.PLANNED):
            raise Conflict(
                f"run #{run.pk} is {run.status}; only planned or needs-approval runs can be applied"
            )
        runs.request_plan_apply(run, triggered_by=self.triggered_by())
        return self.accepted(self.get_serializer(run))
