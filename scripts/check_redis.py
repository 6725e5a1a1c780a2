"""Exit non-zero with a clear message when nothing answers at REDIS_URL."""

import os
import sys

import redis

url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
try:
    redis.Redis.from_url(url, socket_connect_timeout=2).ping()
except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
    sys.exit(f"cloudsync: Redis does not answer at {url} ({exc}).\n"
             "Start it (e.g. `redis-server`) or point REDIS_URL at one.")
print(f"cloudsync: Redis answers at {url}")
