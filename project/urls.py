from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from sync.endpoint import provider_endpoint
from sync.schema_views import generic_schema

urlpatterns = [
    # Nothing lives at the root: send people where they can log in.
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False), name="home"),
    path("admin/", admin.site.urls),
    path(
        "cloud-sync/provider/<int:provider_id>/",
        provider_endpoint,
        name="cloudsync-endpoint",
    ),
    path("cloud-sync/schema/generic.json", generic_schema, name="cloudsync-generic-schema"),
    path("", include("sync.urls")),
]
