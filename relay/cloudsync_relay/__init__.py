"""cloudsync-relay: OpenStack notifications from the message bus to cloudsync.

Modules: ``config`` (settings from the environment and an optional file),
``notification`` (what is sent: the listener shape, secrets stripped),
``delivery`` (POSTing batches and classifying the answers), ``health``
(counters and the per-minute log line), ``listener`` (the oslo.messaging
side: pool, batches, acknowledge or requeue), ``check`` (``--check``) and
``cli`` (the ``cloudsync-relay`` command).
"""

__version__ = "1.0.0"
