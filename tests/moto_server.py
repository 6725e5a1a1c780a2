"""moto in *server* mode for AWS tests: boto3 talks real HTTP to a local
endpoint, exactly as it talks to AWS (nothing in the SDK is patched).

API
---
``get_moto_server() -> MotoServer``
    The process-wide server (started on first use on a free 127.0.0.1 port,
    stopped at exit). moto keeps its state per account and region, so tests
    isolate themselves by using their own region (``fresh_region()``).
``moto_server`` (pytest fixture, defined as ``moto_server_fixture``)
    The same server; make it available to a test module with
    ``from tests.moto_server import moto_server_fixture  # noqa: F401``.
``MotoServer``
    ``.url`` (endpoint_url), ``.config(region, **extra)`` (a valid ``aws.ec2``
    client_config pointing at the server), ``.client(service, region)``
    (a boto3 client for setting up data), ``.default_ami(region)`` (an
    Amazon Linux 2 x86_64 AMI from moto's default set), ``.launch(region, ...)``
    (RunInstances with a Name tag; returns the instances), ``.reset()``,
    ``.stop()``. Also usable on its own: ``with MotoServer() as server: ...``.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

__all__ = ["MotoServer", "free_port", "fresh_region", "get_moto_server", "moto_server_fixture"]

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
DEFAULT_ACCOUNT = "123456789012"  # moto's default account

# Regions handed out to tests so each works in its own, empty moto backend.
_REGIONS = [
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
    "af-south-1",
    "ap-east-1",
    "ap-northeast-3",
    "ap-south-2",
    "ap-southeast-3",
    "eu-central-2",
    "eu-south-1",
    "eu-south-2",
    "me-south-1",
    "me-central-1",
    "il-central-1",
    "ca-west-1",
    "ap-southeast-4",
]
_region_counter = itertools.count()


def fresh_region() -> str:
    """A region no other test in this process has used yet."""
    index = next(_region_counter)
    if index >= len(_REGIONS):
        raise RuntimeError("out of fresh moto regions; reuse one or call MotoServer.reset()")
    return _REGIONS[index]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """A ThreadedMotoServer on a free local port."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self._amis: dict[str, str] = {}

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Drop every resource in every region (moto's reset API)."""
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"))
        self._amis.clear()

    def config(self, region: str, **extra: Any) -> dict[str, Any]:
        return {
            "region_name": region,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "endpoint_url": self.url,
            **extra,
        }

    def client(self, service: str, region: str) -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def default_ami(self, region: str) -> str:
        if region not in self._amis:
            images = self.client("ec2", region).describe_images(
                Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*x86_64*"]}]
            )["Images"]
            self._amis[region] = sorted(images, key=lambda i: i["Name"])[0]["ImageId"]
        return self._amis[region]

    def launch(
        self,
        region: str,
        *,
        name: str | None = "web-1",
        instance_type: str = "t3.micro",
        count: int = 1,
        image_id: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """RunInstances; returns the instances as DescribeInstances shows them."""
        all_tags = dict(tags or {})
        if name is not None:
            all_tags["Name"] = name
        kwargs: dict[str, Any] = {}
        if all_tags:
            kwargs["TagSpecifications"] = [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()],
                }
            ]
        ec2 = self.client("ec2", region)
        answer = ec2.run_instances(
            ImageId=image_id or self.default_ami(region),
            MinCount=count,
            MaxCount=count,
            InstanceType=instance_type,
            **kwargs,
        )
        ids = [i["InstanceId"] for i in answer["Instances"]]
        described = ec2.describe_instances(InstanceIds=ids)["Reservations"]
        by_id = {i["InstanceId"]: i for r in described for i in r["Instances"]}
        return [by_id[i] for i in ids]


_server: MotoServer | None = None
_lock = threading.Lock()


def get_moto_server() -> MotoServer:
    global _server
    with _lock:
        if _server is None:
            _server = MotoServer()
            atexit.register(_server.stop)
        return _server


@pytest.fixture(scope="session", name="moto_server")
def moto_server_fixture() -> Iterator[MotoServer]:
    """The ``moto_server`` fixture (named so that importing it does not clash
    with test parameters called ``moto_server``)."""
    yield get_moto_server()
