from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_delete, post_save


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Cloud sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A provider changed in this process is re-read by its endpoint at
        # once; other processes re-read it within CLOUDSYNC_PROVIDER_CACHE_SECONDS.
        from sync.endpoint import clear_provider_cache
        from sync.models import CloudProvider

        for signal in (post_save, post_delete):
            signal.connect(clear_provider_cache, sender=CloudProvider,
                           dispatch_uid=f"cloudsync-provider-cache-{signal}")
        from sync.retention import forget_provider_history

        post_delete.connect(forget_provider_history, sender=CloudProvider,
                            dispatch_uid="cloudsync-provider-history")
        from sync.pg_timestamps import register

        connection_created.connect(register, dispatch_uid="cloudsync-pg-timestamps")
