"""Bench-only settings: production settings, with the bench URLconf."""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
