"""Run the fake OpenStack cloud in its own process (for bench.fullsync).

    python -m bench.fake_cloud_process --servers 10000 [--flavors 20]
        [--images N] [--projects 50]

Seeds ``tests.fake_openstack.FakeCloud`` (servers with one port each, spread
round-robin over the projects, flavors and images), starts the HTTP server
on a free port of 127.0.0.1, prints one JSON line to stdout
(``{"client_config": ..., "seconds": ..., "counts": ...}``) and serves until
its stdin is closed (or it gets SIGTERM/SIGINT). A separate process keeps the
fake's serialization off the GIL of the process being measured.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

BATCH = 100  # servers per add_servers call: each batch gets the next flavor/image


def seed(servers: int, flavors: int, images: int, projects: int):
    from tests.fake_openstack import FakeCloud

    data = FakeCloud()
    data.add_projects(projects)
    flavor_recs = data.add_flavors(flavors)
    image_recs = data.add_images(images)
    done = n = 0
    while done < servers:
        count = min(BATCH, servers - done)
        data.add_servers(
            count,
            flavor=flavor_recs[n % len(flavor_recs)],
            image=image_recs[n % len(image_recs)],
        )
        done += count
        n += 1
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, required=True)
    parser.add_argument("--flavors", type=int, default=20)
    parser.add_argument("--images", type=int, default=None, help="default: servers/100, at least 3")
    parser.add_argument("--projects", type=int, default=50)
    args = parser.parse_args(argv)
    images = args.images if args.images is not None else max(3, args.servers // 100)

    from tests.fake_openstack import FakeOpenStack

    started = time.perf_counter()
    data = seed(args.servers, args.flavors, images, args.projects)
    fake = FakeOpenStack(data)
    fake.start()
    counts = {
        "servers": len(data.servers),
        "ports": len(data.ports),
        "flavors": len(data.flavors),
        "images": len(data.images),
        "projects": len(data.projects),
    }
    line = {
        "client_config": fake.client_config(),
        "seconds": round(time.perf_counter() - started, 2),
        "counts": counts,
    }
    print(json.dumps(line), flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def wait_stdin() -> None:
        sys.stdin.read()  # EOF: the parent is gone or done
        stop.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    stop.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
