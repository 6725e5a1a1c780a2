"""Queue and task names, defined once (a leaf: imports nothing).

``project/celery.py`` routes by ``ROUTES``; ``sync/tasks.py`` registers its
tasks under these names; services queue work by name through
``sync.queueing.send_task`` and never import ``sync.tasks``. The names are
part of the broker contract (queued messages and beat schedules carry
them): change one only with a migration of what is queued.
"""

__all__ = [
    "APPLY_PLAN", "EVENTS_QUEUE", "FINISH_SPLIT", "INGEST", "PURGE", "QUEUES", "REPLAY", "ROUTES", "RUN_SYNC",
    "SPLIT_FAILED", "SWEEP", "SYNC_ALL", "SYNC_PART", "SYNC_QUEUE",
]

EVENTS_QUEUE = "cloudsync.events"  # webhook bodies, event replays and retries
SYNC_QUEUE = "cloudsync.sync"  # full syncs, plans, beat jobs
QUEUES = (EVENTS_QUEUE, SYNC_QUEUE)

INGEST = "sync.tasks.ingest"
REPLAY = "sync.tasks.replay"
RUN_SYNC = "sync.tasks.run_sync"
APPLY_PLAN = "sync.tasks.apply_plan"
SYNC_ALL = "sync.tasks.sync_all"
SWEEP = "sync.tasks.sweep"
PURGE = "sync.tasks.purge"  # retention (sync/retention.py), a beat schedule
# A split full sync: a chord of SYNC_PART tasks whose body is FINISH_SPLIT
# (SPLIT_FAILED: the body's error callback, when the chord itself fails).
SYNC_PART = "sync.tasks.sync_part"
FINISH_SPLIT = "sync.tasks.finish_split"
SPLIT_FAILED = "sync.tasks.split_failed"

ROUTES = {
    INGEST: {"queue": EVENTS_QUEUE},
    REPLAY: {"queue": EVENTS_QUEUE},
    RUN_SYNC: {"queue": SYNC_QUEUE},
    APPLY_PLAN: {"queue": SYNC_QUEUE},
    SYNC_ALL: {"queue": SYNC_QUEUE},
    SWEEP: {"queue": SYNC_QUEUE},
    PURGE: {"queue": SYNC_QUEUE},
    SYNC_PART: {"queue": SYNC_QUEUE},
    FINISH_SPLIT: {"queue": SYNC_QUEUE},
    SPLIT_FAILED: {"queue": SYNC_QUEUE},
}
