"""The web process's log: a timestamped access line for every request (2xx
included, ``?token=`` redacted), and no WhiteNoise warning about STATIC_ROOT."""

from __future__ import annotations

import io
import logging
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings

ACCESS = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) django\.server \"GET (\S+) HTTP/1\.1\" (\d{3}) \d+$"
)


def _console() -> logging.StreamHandler:
    """The handler LOGGING installs on the root logger (not pytest's own)."""
    [handler] = [
        h for h in logging.getLogger().handlers
        if type(h) is logging.StreamHandler and h.formatter and "asctime" in (h.formatter._fmt or "")
    ]
    return handler


@pytest.fixture
def web_log() -> Iterator[io.StringIO]:
    handler = _console()
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(old)


def _access_lines(buffer: io.StringIO, count: int) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + 3  # the line is written after the response
    while True:
        found = [m.groups() for m in map(ACCESS.match, buffer.getvalue().splitlines()) if m]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


@pytest.mark.django_db
def test_every_request_gets_a_timestamped_access_line(runserver, web_log) -> None:
    assert requests.get(f"{runserver}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{runserver}/", allow_redirects=False, timeout=5).status_code == 302
    assert requests.get(f"{runserver}/nowhere?token=s3cret", timeout=5).status_code == 404
    assert _access_lines(web_log, 3) == [
        ("INFO", "/healthz", "200"),
        ("INFO", "/", "302"),
        ("WARNING", "/nowhere?token=[redacted]", "404"),
    ]
    assert "s3cret" not in web_log.getvalue()


def test_no_static_root_warning_when_the_web_process_starts() -> None:
    from whitenoise.middleware import WhiteNoiseMiddleware

    assert Path(settings.STATIC_ROOT).is_dir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        WhiteNoiseMiddleware(lambda request: None)
    assert [str(w.message) for w in caught if "No directory at" in str(w.message)] == []
