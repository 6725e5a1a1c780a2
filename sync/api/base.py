"""What every viewset of the API shares: model permissions for reads and
writes, capped pagination, numeric ids, renderers that never echo secrets,
and the mapping of service errors (``sync.runs``, the broker) to answers."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from sync import errors
from sync.api.permissions import ModelPermissions
from sync.api.renderers import BrowsableAPIRenderer, JSONRenderer
from sync.drivers.base import DriverError

__all__ = [
    "ERROR_RESPONSES",
    "BaseViewSet",
    "BrokerUnavailable",
    "Conflict",
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
