"""Replay of failed/dead events through the API: reopened and queued in Redis."""

from __future__ import annotations

from django.utils import timezone

from sync.models import Event

QUEUE = "cloudsync.events"


def event(provider, key: str, status: str, **fields) -> Event:
    return Event.objects.create(
        cloudprovider=provider,
        key=key,
        status=status,
        received_at=timezone.now(),
        error="boom" if status in ("failed", "dead") else "",
        **fields,
    )


def test_replay_one_dead_event(admin_api, provider, broker):
    # given
    dead = event(provider, "d1", "dead")
    # when
    response = admin_api.post(f"/api/events/{dead.pk}/replay/")
    # then
    assert response.status_code == 202
    assert response.json() == {"replayed": [dead.pk], "count": 1, "remaining": 0}
    dead.refresh_from_db()
    assert (dead.status, dead.error) == ("queued", "")
    assert broker.llen(QUEUE) == 1
    assert b"sync.tasks.replay" in broker.lindex(QUEUE, 0)


def test_replay_of_a_processed_event_is_409(admin_api, provider, broker):
    done = event(provider, "p1", "processed")
    response = admin_api.post(f"/api/events/{done.pk}/replay/")
    assert response.status_code == 409
    assert "only failed or dead" in response.json()["detail"]
    assert broker.llen(QUEUE) == 0


def test_replay_matching_takes_filters(admin_api, provider_factory, broker):
    # given
    east, west = provider_factory(name="east"), provider_factory(name="west")
    e_dead = event(east, "1", "dead")
    e_failed = event(east, "2", "failed", event_type="compute.instance.update")
    event(east, "3", "processed")
    event(west, "4", "dead")
    # when
    response = admin_api.post("/api/events/replay/?provider=east")
    # then
    assert response.status_code == 202
    assert sorted(response.json()["replayed"]) == sorted([e_dead.pk, e_failed.pk])
    assert set(Event.objects.filter(cloudprovider=east).values_list("status", flat=True)) == {
        "queued",
        "processed",
    }
    assert Event.objects.get(cloudprovider=west).status == "dead"
    assert broker.llen(QUEUE) == 1  # one task carries the ids
    # and a second request finds nothing left
    again = admin_api.post("/api/events/replay/?provider=east")
    assert again.json() == {"replayed": [], "count": 0, "remaining": 0}
    assert broker.llen(QUEUE) == 1


def test_replay_matching_rejects_bad_filters(admin_api, provider, broker):
    event(provider, "1", "dead")
    response = admin_api.post("/api/events/replay/?status=nonsense")
    assert response.status_code == 400
    assert Event.objects.get().status == "dead"


def test_replay_answers_503_when_the_broker_is_down(admin_api, provider, monkeypatch):
    from kombu.exceptions import OperationalError

    from sync import queueing

    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(queueing, "send_task", down)
    dead = event(provider, "1", "dead")
    response = admin_api.post(f"/api/events/{dead.pk}/replay/")
    assert response.status_code == 503
