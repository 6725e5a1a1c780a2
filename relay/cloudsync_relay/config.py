"""The relay's settings: environment variables, an optional file, defaults.

The file is an oslo.config INI file (``--config-file``, or
``CLOUDSYNC_RELAY_CONFIG_FILE``): options of the ``[relay]`` section below,
and any oslo.messaging section the transport reads (``[oslo_messaging_rabbit]``
for TLS, heartbeats, quorum queues...). Each ``[relay]`` option can also be
set as ``CLOUDSYNC_RELAY_<NAME>`` in the environment, which wins over the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from oslo_config import cfg
from oslo_messaging import opts as oslo_opts

__all__ = ["ConfigError", "ENV_PREFIX", "OPTIONS", "Settings", "load"]

ENV_PREFIX = "CLOUDSYNC_RELAY_"
GROUP = "relay"

OPTIONS = [
    cfg.StrOpt(
        "url", help="the provider's endpoint, https://<cloudsync>/cloud-sync/provider/<id>/"
    ),
    cfg.StrOpt("secret", secret=True, help="the provider's endpoint secret (sent as Bearer)"),
    cfg.StrOpt("secret_file", help="a file holding the secret (instead of secret)"),
    cfg.StrOpt(
        "transport_url",
        secret=True,
        help="the bus, e.g. rabbit://user:pass@host:5672/ "
        "(default: [oslo_messaging_notifications] or [DEFAULT] transport_url of the file)",
    ),
    cfg.ListOpt("topics", default=["notifications", "versioned_notifications"]),
    cfg.ListOpt("exchanges", default=["nova", "glance", "neutron", "keystone"]),
    cfg.ListOpt("priorities", default=["audit", "info", "warn", "error", "critical"]),
    cfg.StrOpt("pool", default="cloudsync", help="listener pool: the relay's own queue"),
    cfg.IntOpt(
        "batch_size", default=50, min=1, help="notifications per POST at most (1: no batching)"
    ),
    cfg.FloatOpt("batch_timeout", default=0.2, min=0.01, help="seconds a batch waits to fill up"),
    cfg.IntOpt("concurrency", default=4, min=1, help="POSTs in flight at most"),
    cfg.IntOpt(
        "max_body_bytes",
        default=1048576,
        min=1024,
        help="a POST body stays under this size (the endpoint's CLOUDSYNC_MAX_BODY_BYTES)",
    ),
    cfg.FloatOpt("timeout", default=10.0, min=0.1, help="HTTP timeout in seconds"),
    cfg.StrOpt("verify", default="true", help="TLS: true, false, or a CA bundle path"),
    cfg.FloatOpt("backoff_base", default=1.0, min=0.01, help="first requeue delay in seconds"),
    cfg.FloatOpt("backoff_cap", default=60.0, min=0.01, help="longest requeue delay in seconds"),
    cfg.FloatOpt("health_interval", default=60.0, min=0.1, help="seconds between health lines"),
    cfg.IntOpt(
        "max_attempts",
        default=10,
        min=0,
        help="a notification that keeps failing when posted alone (a non-202, non-permanent "
        "HTTP answer) while the endpoint accepts others is dropped after this many such "
        "attempts (0: never)",
    ),
    cfg.PortOpt(
        "metrics_port",
        help="serve Prometheus metrics on this port (unset: no metrics; needs the "
        "'metrics' extra: pip install 'cloudsync-relay[metrics]')",
    ),
    cfg.StrOpt("metrics_address", default="127.0.0.1", help="address the metrics port binds"),
]


class ConfigError(Exception):
    """The settings are incomplete or invalid."""


@dataclass(frozen=True)
class Settings:
    url: str
    secret: str
    transport_url: str | None
    topics: list[str]
    exchanges: list[str]
    priorities: list[str]
    pool: str
    batch_size: int = 50
    batch_timeout: float = 0.2
    concurrency: int = 4
    max_body_bytes: int = 1048576
    timeout: float = 10.0
    verify: bool | str = True
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    health_interval: float = 60.0
    max_attempts: int = 10
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    conf: cfg.ConfigOpts | None = field(default=None, compare=False, repr=False)


def _verify(value: str) -> bool | str:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on", ""):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    return value  # a CA bundle


def load(config_file: str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read the file (if any), apply the environment, check what is required."""
    environ = dict(os.environ if environ is None else environ)
    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG_FILE") or None
    if config_file and not os.path.isfile(config_file):
        raise ConfigError(f"config file {config_file} does not exist")
    conf = cfg.ConfigOpts()
    conf.register_opts(OPTIONS, group=GROUP)
    for group, opts in oslo_opts.list_opts():  # the transport's sections, for the file
        conf.register_opts(opts, group=None if group in (None, "DEFAULT") else group)
    try:
        conf(
            args=[],
            project="cloudsync-relay",
            default_config_files=[config_file] if config_file else [],
            default_config_dirs=[],
            use_env=False,
        )
    except (cfg.Error, ValueError) as exc:
        raise ConfigError(f"config file {config_file}: {exc}") from exc
    for opt in OPTIONS:
        value = environ.get(ENV_PREFIX + opt.dest.upper())
        if value is not None:
            try:
                conf.set_override(opt.dest, value, group=GROUP)
            except ValueError as exc:
                raise ConfigError(f"{ENV_PREFIX}{opt.dest.upper()}={value!r}: {exc}") from exc
    try:
        group = conf[GROUP]
        values = {opt.dest: group[opt.dest] for opt in OPTIONS}
    except (cfg.Error, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    return _settings(values, conf)


def _settings(values: dict, conf: cfg.ConfigOpts) -> Settings:
    missing = []
    url = (values["url"] or "").strip()
    if not url:
        missing.append(f"url ({ENV_PREFIX}URL)")
    elif not url.startswith(("http://", "https://")):
        raise ConfigError(f"url must start with http:// or https://, not {url!r}")
    secret = values["secret"] or ""
    if not secret and values["secret_file"]:
        try:
            with open(values["secret_file"], encoding="utf-8") as fh:
                secret = fh.read()
        except OSError as exc:
            raise ConfigError(f"secret_file: {exc}") from exc
    secret = secret.strip()
    if not secret:
        missing.append(f"secret ({ENV_PREFIX}SECRET or {ENV_PREFIX}SECRET_FILE)")
    if missing:
        raise ConfigError("missing setting: " + ", ".join(missing))
    for name in ("topics", "exchanges", "priorities"):
        values[name] = [v.strip() for v in values[name] if v.strip()]
        if not values[name]:
            raise ConfigError(f"{name} is empty")
    if not (values["pool"] or "").strip():
        raise ConfigError("pool is empty: the relay needs its own listener pool")
    return Settings(
        url=url,
        secret=secret,
        transport_url=values["transport_url"] or None,
        topics=values["topics"],
        exchanges=values["exchanges"],
        priorities=[p.lower() for p in values["priorities"]],
        pool=values["pool"].strip(),
        batch_size=values["batch_size"],
        batch_timeout=values["batch_timeout"],
        concurrency=values["concurrency"],
        max_body_bytes=values["max_body_bytes"],
        timeout=values["timeout"],
        verify=_verify(values["verify"]),
        backoff_base=values["backoff_base"],
        backoff_cap=max(values["backoff_cap"], values["backoff_base"]),
        health_interval=values["health_interval"],
        max_attempts=values["max_attempts"],
        metrics_port=values["metrics_port"],
        metrics_address=(values["metrics_address"] or "").strip() or "127.0.0.1",
        conf=conf,
    )
