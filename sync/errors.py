"""Exceptions shared by services and their entry points (a leaf module).

Raised by ``sync.runs`` / ``sync.reconcile``, caught by tasks, the API, the
admin and management commands, which import them from here so that no
entry point and no lower layer has to import a higher one.
"""

__all__ = ["PlanNotApplicable", "QueueUnavailable", "RunFailed", "RunInProgress", "RunRefused"]


class RunInProgress(Exception):
    """A run of this provider is already running (the per-provider lock)."""


class QueueUnavailable(Exception):
    """The broker did not take the task; nothing was started."""


class PlanNotApplicable(Exception):
    """The run has no stored plan that can be applied."""


class RunRefused(Exception):
    """A run may not start (sync disabled, driver not installed, or unable to
    list); nothing was recorded. The message says why."""


class RunFailed(Exception):
    """A sync run ended failed (already recorded on the run): raised by the
    task so that Celery, and Flower, count it as a failed task."""
