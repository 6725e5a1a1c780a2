"""The retention purge deleting a tombstone that an ingest batch has just
resolved as a reference (unlocked): the batch's deferred foreign-key check
fails at commit, and the events are retried, not failed; the retry resolves
the reference again (a placeholder) and applies. Real Postgres; the purge's
DELETE is run at that exact point by a trigger (the interleaving; it rolls
back with the batch, so the test then deletes the tombstone as the purge's
own committed batch would have)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sync.choices import EventStatusChoices as Status
from sync.ingest import ingest_body, replay
from sync.models import CloudHost, CloudProject, Event
from tests.history.test_history import UUID, message, openstack  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="deferred FK checks"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

# When a host row is written naming a project tombstone, delete that
# tombstone: what the purge does if it runs between the batch resolving the
# reference and committing.
PURGE_MEANWHILE = """
CREATE FUNCTION histfix_purge_meanwhile() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM sync_cloudproject WHERE id = NEW.project_id AND deleted_at IS NOT NULL;
  RETURN NULL;
END $$;
CREATE TRIGGER histfix_purge_meanwhile AFTER INSERT OR UPDATE ON sync_cloudhost
  FOR EACH ROW EXECUTE FUNCTION histfix_purge_meanwhile();
"""


def test_a_reference_purged_before_commit_is_retried_not_failed(openstack):  # noqa: F811
    # given a host, and its project an old tombstone nothing names any more
    assert ingest_body(openstack.pk, message("instance-create-end.json", 0)).processed == 1
    host = CloudHost.objects.get(cloudprovider=openstack, host_id=UUID)
    project = host.project
    CloudHost.all_objects.filter(pk=host.pk).update(project=None)
    CloudProject.all_objects.filter(pk=project.pk).update(
        deleted_at=timezone.now() - timedelta(days=60)
    )
    # when an event names it again and the purge deletes it before the commit
    with connection.cursor() as cursor:
        cursor.execute(PURGE_MEANWHILE)
    try:
        report = ingest_body(openstack.pk, message("instance-resize_finish-end.json", 1))
        # then the event is retried (not failed), and the retry applies it
        event = Event.objects.get(cloudprovider=openstack, key="msg-1")
        assert (report.failed, len(report.retry)) == (0, 1)
        assert event.status == Status.QUEUED and event.attempts == 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS histfix_purge_meanwhile ON sync_cloudhost")
            cursor.execute("DROP FUNCTION IF EXISTS histfix_purge_meanwhile()")
    # (the trigger's DELETE rolled back with the batch; the purge's commits)
    CloudProject.all_objects.filter(pk=project.pk).delete()
    assert replay([event.pk]).processed == 1
    event.refresh_from_db()
    assert event.status == Status.PROCESSED
    host.refresh_from_db()
    assert host.project.project_id == project.project_id and host.project.deleted_at is None
