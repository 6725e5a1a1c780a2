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
    settings.CLOUDSYNC_GC_THRESHOLDS = (12345, 7, 9)
    signal.send(sender=None)
    assert gc.get_threshold() == (12345, 7, 9)
    assert gc.get_freeze_count() > 0  # what was alive at start is out of the scans


def test_empty_keeps_cpythons_thresholds(settings):
    gc.set_threshold(700, 10, 10)
    settings.CLOUDSYNC_GC_THRESHOLDS = None
    assert tune() is None
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize(("value", "shown"), [("fast", None), ("", "None"), ("2000,5", "(2000, 5)")])
def test_the_settings_parse_the_environment_and_refuse_a_bad_value(value, shown):
    """Every process (web, worker, beat) loads the settings: a typo stops it
    at start with the setting's name, instead of a worker running untuned."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from django.conf import settings; "
         "print(settings.CLOUDSYNC_GC_THRESHOLDS)"],
        cwd=root, capture_output=True, text=True, timeout=60,
        env={**os.environ, "CLOUDSYNC_GC_THRESHOLDS": value,
             "DJANGO_SETTINGS_MODULE": "project.settings"},
    )
    if shown is None:
        assert proc.returncode != 0
        assert "CLOUDSYNC_GC_THRESHOLDS must be" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == shown
