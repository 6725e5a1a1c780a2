from django.contrib import admin
from django.urls import include, path

from sync.endpoint import provider_endpoint

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "cloud-sync/provider/<int:provider_id>/",
        provider_endpoint,
        name="cloudsync-endpoint",
    ),
    path("", include("sync.urls")),
]
