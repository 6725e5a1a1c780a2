"""Create a cloud provider from the shell and print its endpoint and secret (once)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sync.models import CloudProvider


class Command(BaseCommand):
    help = "Create a cloud provider; prints its webhook URL path and secret (shown only now)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--driver", default="noop", help="registered driver name (default noop)")
        parser.add_argument("--config", default="{}", help="client_config as JSON, or @file.json")
        parser.add_argument("--disabled", action="store_true", help="create with sync disabled")
        parser.add_argument(
            "--shell",
            action="store_true",
            help="print PROVIDER_ID=... and SECRET=... only, for eval \"$(...)\" in a shell",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        raw = opts["config"]
        if raw.startswith("@"):
            with open(raw[1:], encoding="utf-8") as fh:
                raw = fh.read()
        try:
            config = json.loads(raw)
        except ValueError as exc:
            raise CommandError(f"--config is not valid JSON: {exc}") from exc
        provider = CloudProvider(
            name=opts["name"], cloud_sync_driver=opts["driver"],
            cloud_sync_enabled=not opts["disabled"], client_config=config,
        )
        try:
            provider.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {'; '.join(v)}" for k, v in exc.message_dict.items())) from exc
        provider.save()
        if opts["shell"]:
            self.stdout.write(f"PROVIDER_ID={provider.pk}")
            self.stdout.write(f"SECRET={shlex.quote(provider.endpoint_secret)}")
            return
        self.stdout.write(f"provider id: {provider.pk}")
        self.stdout.write(f"endpoint:    {provider.get_endpoint_path()}")
        self.stdout.write(f"secret:      {provider.endpoint_secret}")
