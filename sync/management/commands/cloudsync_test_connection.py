"""Authenticate against a provider's cloud and list one page of each kind."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sync.drivers.base import AuthError, DriverError, DriverNotInstalled, NetworkError
from sync.drivers.registry import get_driver
from sync.management.commands._common import provider_arg


class Command(BaseCommand):
    help = "Test a provider's client_config: authenticate, list one page of each kind."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("provider", help="provider id or name")

    def handle(self, *args: Any, **opts: Any) -> None:
        provider = provider_arg(opts["provider"])
        try:
            driver = get_driver(provider.cloud_sync_driver)
        except DriverNotInstalled as exc:
            raise CommandError(str(exc)) from exc
        try:
            seen = driver.test_connection(provider.client_config)
        except NotImplementedError as exc:
            raise CommandError(str(exc)) from exc
        except AuthError as exc:
            raise CommandError(f"authentication failed: {exc}") from exc
        except NetworkError as exc:
            raise CommandError(f"network error: {exc}") from exc
        except DriverError as exc:
            raise CommandError(f"API error: {exc}") from exc
        self.stdout.write(f"{provider}: connection OK")
        self.stdout.write(json.dumps(seen, indent=2, sort_keys=True, default=str))
