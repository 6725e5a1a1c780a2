"""Logging filters: secrets never reach a log line."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"([?&]token=)[^&\s\"']*", re.IGNORECASE)


class RedactTokenFilter(logging.Filter):
    """Rewrite ``?token=<secret>`` in access lines (runserver, gunicorn) to
    ``?token=[redacted]``: producers that cannot send headers put the
    provider secret in the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKEN.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
