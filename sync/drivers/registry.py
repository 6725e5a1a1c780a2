"""Where drivers come from: built-ins, the ``cloudsync.drivers`` entry-point
group (installed packages), and the ``CLOUDSYNC_DRIVERS`` setting (dotted
paths), so a custom driver needs no fork. Later sources override earlier ones.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import import_module
from importlib.metadata import entry_points

from django.conf import settings

from sync.drivers.base import Driver, DriverNotInstalled

__all__ = ["BUILTIN_DRIVERS", "get_driver", "is_installed", "registered_names", "reset_registry"]

log = logging.getLogger(__name__)

BUILTIN_DRIVERS = (
    "sync.drivers.noop.NoopDriver",
    "sync.drivers.openstack.OpenStackDriver",
    "sync.drivers.aws.AwsEc2Driver",
    "sync.drivers.generic.GenericDriver",
)


def _load(path: str) -> type[Driver]:
    module, _, attr = path.rpartition(".")
    return getattr(import_module(module), attr)


def _check(cls: object, origin: str) -> type[Driver]:
    if not (isinstance(cls, type) and issubclass(cls, Driver) and cls.name):
        raise TypeError(f"{origin}: not a Driver subclass with a name")
    return cls


@lru_cache(maxsize=1)
def _registry() -> dict[str, Driver]:
    classes: list[type[Driver]] = []
    for path in BUILTIN_DRIVERS:
        try:
            classes.append(_check(_load(path), path))
        except ImportError as exc:  # an optional SDK missing must not break the rest
            log.warning("built-in driver %s unavailable: %s", path, exc)
    for ep in entry_points(group="cloudsync.drivers"):
        try:
            classes.append(_check(ep.load(), f"entry point {ep.name}"))
        except Exception:
            log.exception("cannot load driver entry point %s", ep.name)
    for path in settings.CLOUDSYNC_DRIVERS:
        classes.append(_check(_load(path), path))  # misconfiguration: fail loudly
    drivers: dict[str, Driver] = {}
    for cls in classes:
        instance = cls()
        for name in (cls.name, *cls.aliases):
            drivers[name] = instance
    return drivers


def get_driver(name: str) -> Driver:
    """The driver registered under ``name``; ``DriverNotInstalled`` if none."""
    try:
        return _registry()[name]
    except KeyError:
        raise DriverNotInstalled(name) from None


def is_installed(name: str) -> bool:
    return name in _registry()


def registered_names() -> list[str]:
    return sorted(_registry())


def reset_registry() -> None:
    """Forget loaded drivers (tests, after installing a driver package)."""
    _registry.cache_clear()
