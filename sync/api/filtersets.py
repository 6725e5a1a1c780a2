"""Query filters of the API (django-filter), one FilterSet per model.

Every synced-inventory FilterSet hides tombstones unless
``include_deleted=true``. Invalid values answer 400 (the backend's strict
mode), never 500.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

import django_filters
import django_filters.fields
from django import forms
from django.db import models
from django.db.models import Q, QuerySet

from sync import history_reads
from sync.choices import (
    EventStatusChoices,
    HistoryActionChoices,
    HistoryCauseChoices,
    HostStatusChoices,
    SyncRunKindChoices,
    SyncRunStatusChoices,
)
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

__all__ = [
    "CloudFlavorFilterSet",
    "CloudHostFilterSet",
    "CloudImageFilterSet",
    "CloudPortFilterSet",
    "CloudProjectFilterSet",
    "CloudProviderFilterSet",
    "EventFilterSet",
    "HistoryEntryFilterSet",
    "PurgeRunFilterSet",
    "SyncRunFilterSet",
    "hosts_in_network",
]


class CharInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    """Comma-separated strings."""


class IdFormField(forms.IntegerField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)  # bigint: larger ids would be a database error
        super().__init__(*args, **kwargs)


class IdInFilter(django_filters.BaseInFilter, django_filters.Filter):
    """Comma-separated database ids."""

    field_class = IdFormField


class UTCIsoDateTimeFormField(django_filters.fields.IsoDateTimeField):
    """ISO 8601, converted to UTC: databases reject some offsets Python accepts
    (Postgres refuses +22:19)."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Date and time out of range.") from None


class DateTimeSinceFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeFormField


class IPAddressFormField(forms.CharField):
    def to_python(self, value: Any) -> str | None:
        value = super().to_python(value)
        if not value:
            return None
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise forms.ValidationError(f"{value!r} is not an IPv4 or IPv6 address.") from None


class IPNetworkFormField(forms.CharField):
    def to_python(self, value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        value = super().to_python(value)
        if not value:
            return None
        try:
            return ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise forms.ValidationError(
                f"{value!r} is not a network in CIDR notation (e.g. 10.0.0.0/24)."
            ) from None


class StrictBooleanFormField(forms.NullBooleanField):
    """true/false (also 1/0, yes/no); anything else is an error, not "unset"."""

    widget = forms.TextInput
    VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def to_python(self, value: Any) -> bool | None:
        if value in (None, "") or isinstance(value, bool):
            return value if isinstance(value, bool) else None
        try:
            return self.VALUES[str(value).strip().lower()]
        except KeyError:
            raise forms.ValidationError(f"{value!r} is not a boolean (true or false).") from None

    def validate(self, value: Any) -> None:
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanFormField


class IPAddressFilter(django_filters.Filter):
    field_class = IPAddressFormField


class IPNetworkFilter(django_filters.Filter):
    field_class = IPNetworkFormField


def _string_prefix(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[str, bool]:
    """A text prefix every address of ``network`` starts with, and whether
    matching it is already exact (IPv4 on an octet boundary)."""
    if network.version == 4:
        octets = network.prefixlen // 8
        prefix = ".".join(str(network.network_address).split(".")[:octets])
        prefix = prefix + "." if 0 < octets < 4 else prefix
        if octets == 4:
            return str(network.network_address), True
        return prefix, network.prefixlen % 8 == 0
    # Compressed IPv6 text only keeps the first group stable (when non-zero).
    first = network.network_address.exploded.split(":")[0].lstrip("0")
    if network.prefixlen >= 16 and first:
        return first + ":", False
    return "", False


def hosts_in_network(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> QuerySet | list[int]:
    """Ids of hosts with an address inside ``network``, portable to SQLite and
    Postgres: the database narrows by a text prefix, Python decides the rest."""
    candidates = CloudHostIP.objects.filter(version=network.version, host__isnull=False)
    prefix, exact = _string_prefix(network)
    if prefix:
        candidates = candidates.filter(address__startswith=prefix)
    if exact:
        return candidates.values("host_id")
    return sorted(
        {
            host_id
            for host_id, address in candidates.values_list("host_id", "address").iterator()
            if ipaddress.ip_address(address) in network
        }
    )


class FilterSet(django_filters.FilterSet):
    """Boolean model fields filter strictly (a typo is a 400, not "no filter")."""

    FILTER_DEFAULTS = {
        **django_filters.FilterSet.FILTER_DEFAULTS,
        models.BooleanField: {"filter_class": StrictBooleanFilter},
    }


class SyncedFilterSet(FilterSet):
    """Filters shared by every synced inventory model."""

    provider = CharInFilter(
        method="filter_provider",
        label="Provider id or name (comma-separated for several)",
    )
    created_since = DateTimeSinceFilter(
        field_name="created_at", lookup_expr="gte", label="Created at or after (ISO 8601)"
    )
    modified_since = DateTimeSinceFilter(
        field_name="modified_at", lookup_expr="gte", label="Modified at or after (ISO 8601)"
    )
    include_deleted = StrictBooleanFilter(
        method="filter_include_deleted", label="Include deleted objects (tombstones)"
    )

    def filter_provider(self, queryset: QuerySet, name: str, value: list[str]) -> QuerySet:
        return queryset.filter(provider_q(value, "cloudprovider"))

    def filter_include_deleted(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        return queryset  # applied in filter_queryset, also when the parameter is absent

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        if not self.form.cleaned_data.get("include_deleted"):
            queryset = queryset.filter(deleted_at__isnull=True)
        return super().filter_queryset(queryset)


def synced_filter_fields(
    model: type[SyncedModel], *, leave_out: tuple[str, ...] = ()
) -> list[str]:
    """``Meta.fields`` of a synced model: its external id and its synced
    fields (but ``leave_out``), filtered by exact value."""
    return [model.external_id_field, *(f for f in model.synced_fields if f not in leave_out)]


def provider_q(values: list[str], field: str) -> Q:
    """Match providers by id (numeric values) or by name."""
    q = Q(**{f"{field}__name__in": values})
    ids = [int(v) for v in values if v.isascii() and v.isdigit() and len(v) < 19]
    if ids:
        q |= Q(**{f"{field}_id__in": ids})
    return q


class CloudProjectFilterSet(SyncedFilterSet):
    name__ic = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = CloudProject
        fields = synced_filter_fields(CloudProject)


class CloudFlavorFilterSet(SyncedFilterSet):
    name__ic = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = CloudFlavor
        fields = synced_filter_fields(CloudFlavor, leave_out=("extra_specs",))


class CloudImageFilterSet(SyncedFilterSet):
    name__ic = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = CloudImage
        fields = synced_filter_fields(CloudImage, leave_out=("min_disk", "min_ram"))


class CloudPortFilterSet(SyncedFilterSet):
    host_id = CharInFilter(field_name="host__host_id", label="External host id(s)")

    class Meta:
        model = CloudPort
        fields = ["port_id", "parent_port_id"]


class CloudHostFilterSet(SyncedFilterSet):
    hostname__ic = django_filters.CharFilter(
        field_name="hostname", lookup_expr="icontains", label="Hostname contains (case-insensitive)"
    )
    status = django_filters.MultipleChoiceFilter(choices=HostStatusChoices.choices)
    project = IdInFilter(field_name="project_id", label="Project id(s), comma-separated")
    project_id = CharInFilter(field_name="project__project_id", label="External project id(s)")
    flavor = IdInFilter(field_name="cloudflavor_id", label="Flavor id(s), comma-separated")
    flavor_id = CharInFilter(field_name="cloudflavor__flavor_id", label="External flavor id(s)")
    image = IdInFilter(field_name="image_id", label="Image id(s), comma-separated")
    image_id = CharInFilter(field_name="image__image_id", label="External image id(s)")
    ip = IPAddressFilter(method="filter_ip", label="Has this IP address (exact)")
    ip_cidr = IPNetworkFilter(
        method="filter_ip_cidr", label="Has an IP address inside this network (CIDR)"
    )

    class Meta:
        model = CloudHost
        fields = ["host_id", "hostname", "hypervisor", "image_ref"]

    def filter_ip(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(pk__in=CloudHostIP.objects.filter(address=value).values("host_id"))

    def filter_ip_cidr(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        return queryset.filter(pk__in=hosts_in_network(value))


class CloudProviderFilterSet(FilterSet):
    name__ic = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = CloudProvider
        fields = ["name", "cloud_sync_enabled", "cloud_sync_driver"]


class EventFilterSet(FilterSet):
    provider = CharInFilter(method="filter_provider", label="Provider id or name")
    status = django_filters.MultipleChoiceFilter(choices=EventStatusChoices.choices)
    event_type = CharInFilter(field_name="event_type", label="Event type(s), comma-separated")
    received_since = DateTimeSinceFilter(field_name="received_at", lookup_expr="gte")
    received_before = DateTimeSinceFilter(field_name="received_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["key"]

    def filter_provider(self, queryset: QuerySet, name: str, value: list[str]) -> QuerySet:
        return queryset.filter(provider_q(value, "cloudprovider"))


class SyncRunFilterSet(FilterSet):
    provider = CharInFilter(method="filter_provider", label="Provider id or name")
    kind = django_filters.MultipleChoiceFilter(choices=SyncRunKindChoices.choices)
    status = django_filters.MultipleChoiceFilter(choices=SyncRunStatusChoices.choices)
    started_since = DateTimeSinceFilter(field_name="started_at", lookup_expr="gte")
    started_before = DateTimeSinceFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = SyncRun
        fields = ["triggered_by"]

    def filter_provider(self, queryset: QuerySet, name: str, value: list[str]) -> QuerySet:
        return queryset.filter(provider_q(value, "cloudprovider"))


class HistoryEntryFilterSet(FilterSet):
    """History entries: by time range and cause (also on the per-object
    ``history`` actions of the inventory endpoints)."""

    provider = CharInFilter(method="filter_provider", label="Provider id or name")
    kind = django_filters.ChoiceFilter(
        choices=[(k, k) for k in ("host", "flavor", "image", "project", "host_ip")],
        label="Object kind (host_ip: ports)",
    )
    object_id = django_filters.NumberFilter(field_name="object_pk", label="The object's API id")
    since = DateTimeSinceFilter(field_name="applied_at", lookup_expr="gte",
                                label="Applied at or after (ISO 8601)")
    until = DateTimeSinceFilter(field_name="applied_at", lookup_expr="lt",
                                label="Applied before (ISO 8601)")
    cause = django_filters.MultipleChoiceFilter(choices=HistoryCauseChoices.choices)
    action = django_filters.MultipleChoiceFilter(choices=HistoryActionChoices.choices)
    event = django_filters.NumberFilter(field_name="event_id", label="Caused by this inbox event")
    run = django_filters.NumberFilter(field_name="run_id", label="Caused by this sync run")
    event_type = CharInFilter(field_name="event_type", label="Event type(s), comma-separated")
    external_id = django_filters.CharFilter(
        method="filter_external_id",
        label="The object's external id (also once its tombstone was purged)",
    )

    class Meta:
        model = HistoryEntry
        fields: list[str] = []

    def filter_provider(self, queryset: QuerySet, name: str, value: list[str]) -> QuerySet:
        return queryset.filter(provider_q(value, "cloudprovider"))

    def filter_external_id(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(history_reads.named(value))


class PurgeRunFilterSet(FilterSet):
    started_since = DateTimeSinceFilter(field_name="started_at", lookup_expr="gte")

    class Meta:
        model = PurgeRun
        fields: list[str] = []
