"""Bench-only URLconf: the production URLs plus the bare view (same middleware)."""

from django.urls import path

from bench.bare import bare
from project.urls import urlpatterns as _production

urlpatterns = [
    path("bench/bare/<int:provider_id>/", bare, name="bench-bare"),
    *_production,
]
