"""WSGI entry point.

Webhook POSTs (``/cloud-sync/provider/<id>/``) take a short path to the
same Django view, without the middleware stack and URL resolution that the
admin and API need: sessions, CSRF, auth, messages and clickjacking
protection do nothing for a machine-to-machine endpoint that authenticates
by its own secret, and they cost a third of the request. Everything else,
and every request in tests and ``runserver``'s autoreloader-free paths, goes
through Django's handler as usual. See ``sync.webhook_wsgi``.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

django_application = get_wsgi_application()

from sync.webhook_wsgi import with_webhook_fast_path  # noqa: E402 (needs Django set up)

application = with_webhook_fast_path(django_application)
