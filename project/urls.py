from django.contrib import admin
from django.urls import include, path

from sync.endpoint import provider_endpoint
from sync.schema_views import generic_schema

urlpatterns = [
    path("admin/", admin.site.urls),
    path(
        "cloud-sync/provider/<int:provider_id>/",
        provider_endpoint,
        name="cloudsync-endpoint",
    ),
    path("cloud-sync/schema/generic.json", generic_schema, name="cloudsync-generic-schema"),
    path("", include("sync.urls")),
]
