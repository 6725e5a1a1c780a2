"""Ceilometer's own ``notifier://`` event publisher
(``ceilometer.publisher.messaging.EventNotifierPublisher``), run for real.

It runs in a child process: importing ``ceilometer.publisher.messaging``
imports oslo.service and with it eventlet, which must stay out of the
process that hosts the test Celery worker. The publisher is configured with
oslo.messaging's ``fake`` transport and its ``test`` notification driver, so
the notification it builds (``notifier.sample({}, event_type="event",
payload=[...])``: message id, publisher id, priority, timestamp) is
captured instead of sent to a broker; ``as_listener``/``as_wire`` give what
a relay (README: oslo.messaging listener) and the ``messagingv2`` wire carry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

__all__ = ["as_listener", "as_wire", "publish"]

_SCRIPT = r"""
import json, sys
from urllib.parse import urlparse
from oslo_config import cfg
from oslo_messaging.notify import _impl_test
from ceilometer.event import models
from ceilometer.publisher import messaging, utils

conf = cfg.ConfigOpts()
conf.register_opts(messaging.NOTIFIER_OPTS, group="publisher_notifier")
conf.register_opts(utils.OPTS, group="publisher")
conf.register_opts([cfg.StrOpt("host", default="ceilometer-agent-1")])
conf([], project="ceilometer", default_config_files=[], default_config_dirs=[])
conf.set_override("telemetry_driver", "test", group="publisher_notifier")
publisher = messaging.EventNotifierPublisher(conf, urlparse("notifier://localhost/?driver=fake"))
out = []
for batch in json.load(sys.stdin):
    events = [
        models.Event(e["message_id"], e["event_type"], e["generated"],
                     [models.Trait(*t) for t in e["traits"]], e["raw"])
        for e in batch
    ]
    _impl_test.reset()
    publisher.publish_events(events)
    out.extend(message for _, message, _, _ in _impl_test.NOTIFICATIONS)
json.dump(out, sys.stdout, default=str)
"""


def publish(batches: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The notifications the publisher sends for each batch of serialized
    Ceilometer events (``Event.serialize()``), one per batch."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _SCRIPT],
        input=json.dumps(batches, default=str),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def as_listener(notification: dict[str, Any]) -> dict[str, Any]:
    """What an oslo.messaging NotificationListener hands its endpoint (and
    the README's relay posts): ``{ctxt, publisher_id, event_type, payload,
    metadata}``."""
    return {
        "ctxt": {},
        "publisher_id": notification["publisher_id"],
        "event_type": notification["event_type"],
        "payload": notification["payload"],
        "metadata": {
            "message_id": notification["message_id"],
            "timestamp": notification["timestamp"],
        },
    }


def as_wire(notification: dict[str, Any]) -> dict[str, str]:
    """The ``messagingv2`` wire form: an oslo 2.0 envelope."""
    return {"oslo.version": "2.0", "oslo.message": json.dumps(notification)}
