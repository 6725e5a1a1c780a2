"""Worker processes start with the configured garbage-collector thresholds
(sync.gc_tuning); a bad value is a clear error, empty keeps CPython's."""

from __future__ import annotations

import gc

import pytest
from celery.signals import worker_init, worker_process_init

from sync.gc_tuning import parse_thresholds, tune


@pytest.fixture(autouse=True)
def restore_gc():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10000,10,10", (10000, 10, 10)), (" 5000 ", (5000,)), ("", None), ("  ", None)],
)
def test_thresholds_are_parsed(text, expected):
    assert parse_thresholds(text) == expected


@pytest.mark.parametrize("text", ["fast", "0,10,10", "1,2,3,4", "10000,,10", "-5"])
def test_a_bad_value_names_the_setting(text):
    with pytest.raises(ValueError, match="CLOUDSYNC_GC_THRESHOLDS must be"):
        parse_thresholds(text)


@pytest.mark.parametrize("signal", [worker_init, worker_process_init])
def test_a_starting_worker_process_takes_the_setting(settings, signal):
    import project.celery  # noqa: F401  (connects the handlers)

    gc.set_threshold(700, 10, 10)
    settings.CLOUDSYNC_GC_THRESHOLDS = "12345,7,9"
    signal.send(sender=None)
    assert gc.get_threshold() == (12345, 7, 9)
    assert gc.get_freeze_count() > 0  # what was alive at start is out of the scans


def test_empty_keeps_cpythons_thresholds(settings):
    gc.set_threshold(700, 10, 10)
    settings.CLOUDSYNC_GC_THRESHOLDS = ""
    assert tune() is None
    assert gc.get_threshold() == (700, 10, 10)
