"""Routes of the REST API (mounted at ``/api/`` by ``sync.urls``, namespace ``api``)."""

from rest_framework.routers import DefaultRouter

from sync.api import views

__all__ = ["router", "urlpatterns"]

app_name = "api"

router = DefaultRouter()
router.register("cloud-providers", views.CloudProviderViewSet, basename="cloudprovider")
router.register("cloud-projects", views.CloudProjectViewSet, basename="cloudproject")
router.register("cloud-flavors", views.CloudFlavorViewSet, basename="cloudflavor")
router.register("cloud-images", views.CloudImageViewSet, basename="cloudimage")
router.register("cloud-hosts", views.CloudHostViewSet, basename="cloudhost")
router.register("cloud-ports", views.CloudPortViewSet, basename="cloudport")
router.register("history", views.HistoryEntryViewSet, basename="historyentry")
router.register("purge-runs", views.PurgeRunViewSet, basename="purgerun")
router.register("events", views.EventViewSet, basename="event")
router.register("sync-runs", views.SyncRunViewSet, basename="syncrun")

urlpatterns = router.urls
