"""What every viewset of the API shares: model permissions for reads and
writes, capped pagination, numeric ids, renderers that never echo secrets,
and the mapping of service errors (``sync.runs``, the broker) to answers."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiResponse
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.utils.urls import replace_query_param

from sync import errors
from sync.api.permissions import ModelPermissions
from sync.api.renderers import BrowsableAPIRenderer, JSONRenderer
from sync.drivers.base import DriverError

__all__ = [
    "ERROR_RESPONSES",
    "BaseViewSet",
    "BrokerUnavailable",
    "Conflict",
    "NewestFirstPagination",
    "Pagination",
    "ReadOnlyViewSet",
]

ERROR_RESPONSES = {
    400: OpenApiResponse(description="Invalid parameters or body (field errors)."),
    401: OpenApiResponse(description="Not authenticated."),
    403: OpenApiResponse(description="Missing model permission."),
}


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class BrokerUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The task queue (Redis) is unreachable; nothing was queued. Retry later."
    default_code = "broker_unavailable"


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000


class NewestFirstPagination(BasePagination):
    """Keyset pages, newest first by (``applied_at``, ``id``): ``limit`` (50,
    at most 1000) and an opaque ``cursor`` from the previous page's ``next``.
    No ``count`` and no OFFSET: a page costs an index range scan however big
    the table (``COUNT(*)`` of a whole history table would not)."""

    default_limit = 50
    max_limit = 1000
    fields = ("applied_at", "id")

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: Any = None) -> list:
        self.request = request
        try:
            limit = int(request.query_params.get("limit", self.default_limit))
        except ValueError:
            limit = self.default_limit
        limit = min(max(limit, 1), self.max_limit)
        time_field, id_field = self.fields
        qs = queryset.order_by(f"-{time_field}", f"-{id_field}")
        cursor = request.query_params.get("cursor")
        if cursor:
            at, pk = self._decode(cursor)
            qs = qs.filter(
                Q(**{f"{time_field}__lt": at}) | Q(**{time_field: at, f"{id_field}__lt": pk})
            )
        rows = list(qs[: limit + 1])
        self.next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            key = f"{getattr(last, time_field).isoformat()}|{getattr(last, id_field)}"
            self.next_cursor = base64.urlsafe_b64encode(key.encode()).decode()
        return rows

    @staticmethod
    def _decode(cursor: str) -> tuple[datetime, int]:
        try:
            at, pk = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
            when = parse_datetime(at)
            if when is None:
                raise ValueError(at)
            return when, int(pk)
        except ValueError as exc:  # (binascii.Error and UnicodeError are ValueErrors)
            raise ValidationError({"cursor": ["Invalid cursor."]}) from exc

    def get_paginated_response(self, data: Any) -> Response:
        url = None
        if self.next_cursor:
            url = self.request.build_absolute_uri()
            url = replace_query_param(url, "cursor", self.next_cursor)
        return Response({"next": url, "results": data})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict]:
        return [
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": f"Page size (default {self.default_limit}, at most {self.max_limit})",
                "schema": {"type": "integer"},
            },
            {
                "name": "cursor",
                "required": False,
                "in": "query",
                "description": "The previous page's position (from its `next` link)",
                "schema": {"type": "string"},
            },
        ]


class BaseViewSet(viewsets.GenericViewSet):
    """Shared behaviour: model permissions for reads and writes, capped
    pagination, numeric ids only, service errors mapped to HTTP answers."""

    permission_classes = [ModelPermissions]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    pagination_class = Pagination
    lookup_value_regex = r"[0-9]{1,18}"
    ordering = ["id"]
    # action -> permissions it needs beyond authentication (see ModelPermissions)
    action_permissions: dict[str, list[str]] = {}

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, errors.RunInProgress | errors.RunRefused | errors.PlanNotApplicable):
            exc = Conflict(str(exc))
        elif isinstance(exc, errors.QueueUnavailable | OperationalError | RedisError):
            response = super().handle_exception(BrokerUnavailable())
            response["Retry-After"] = "30"
            return response
        elif isinstance(exc, DriverError):
            exc = ValidationError({"detail": str(exc)})
        return super().handle_exception(exc)

    def accepted(self, serializer: BaseSerializer) -> Response:
        return Response(serializer.data, status=status.HTTP_202_ACCEPTED)

    def triggered_by(self) -> str:
        return f"api:{self.request.user.get_username()}"


class ReadOnlyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, BaseViewSet):
    pass
