"""gunicorn settings read from the working directory (gunicorn loads
``./gunicorn.conf.py`` by default): the command line still chooses workers
and the address.

Metrics: with ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes its
figures to files there and any worker's ``/metrics`` adds them all up
(``sync.metrics``); a worker that exits has its live gauges removed.
"""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    from sync.metrics import mark_process_dead

    mark_process_dead(worker.pid)
