"""Non-webhook URLs of the app (API, health); filled in by the API module."""

urlpatterns: list = []
