"""Non-webhook URLs of the app: the REST API, its schema and docs, health
probes, metrics, the status pages."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from sync.health import healthz, readyz
from sync.metrics_view import metrics_endpoint
from sync.status_views import overview_page, provider_page

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("sync.api.urls", namespace="api")),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_endpoint, name="metrics"),
    path("status/", overview_page, name="cloudsync-status"),
    path("status/<int:provider_id>/", provider_page, name="cloudsync-provider-status"),
]
