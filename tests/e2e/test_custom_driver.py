"""A custom driver shipped as its own package (examples/cloudsync-driver-example):
pip-installed, found through the ``cloudsync.drivers`` entry point, then used
end to end: provider form validation, POST -> worker -> database.

The package is installed with ``pip install --target`` into a fresh
directory put on ``sys.path`` rather than into the shared virtualenv: entry
points are discovered on ``sys.path`` exactly as in site-packages, the
in-process Celery worker (threads pool) sees the same path, and nothing is
left behind or shared. Each pytest-xdist worker builds its own copy, so
parallel runs (and other test sessions using the same venv) never see a
half-installed or suddenly uninstalled package.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from importlib.util import find_spec
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from sync.choices import EventStatusChoices as Status
from sync.drivers.registry import get_driver, registered_names, reset_registry
from sync.models import CloudHost
from tests.e2e.conftest import done, post

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PACKAGE_SRC = Path(__file__).resolve().parents[2] / "examples" / "cloudsync-driver-example"
MODULE = "cloudsync_driver_example"


def _build_tools_missing() -> str:
    """Why ``--no-build-isolation`` cannot build a setuptools wheel here, or ""."""
    if find_spec("setuptools") is None:
        return "setuptools is not installed"
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    if (major, minor) < (70, 1) and find_spec("wheel") is None:
        return f"setuptools {setuptools.__version__} needs the 'wheel' package to build wheels"
    return ""


@pytest.fixture(scope="session")
def example_package(tmp_path_factory) -> Iterator[Path]:
    """pip-install the example driver package for this test session."""
    missing = _build_tools_missing()
    if missing:
        pytest.fail(f"{missing}: install requirements-dev.txt (it pins what the build needs)")
    root = tmp_path_factory.mktemp("driver-example")
    src, site = root / "src", root / "site"
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    shutil.copytree(
        PACKAGE_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(site),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"pip install of the example driver failed:\n{result.stdout}\n{result.stderr}")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    reset_registry()
    try:
        yield site
    finally:  # uninstall: off the path, out of the module cache and the registry
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m == MODULE or m.startswith(MODULE + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        reset_registry()


@pytest.fixture
def example_provider(example_package, provider_factory):
    return provider_factory(
        cloud_sync_driver="example", client_config={"domain": "DC1.example.com."}
    )




def test_driver_is_registered_through_its_entry_point(example_package):
    (ep,) = [ep for ep in entry_points(group="cloudsync.drivers") if ep.name == "example"]
    assert ep.value == "cloudsync_driver_example:ExampleDriver"
    assert ep.dist is not None and ep.dist.name == "cloudsync-driver-example"
    assert Path(ep.dist.locate_file("")).resolve() == example_package.resolve()
    assert "example" in registered_names()
    driver = get_driver("example")
    assert type(driver) is ep.load()
    assert driver.name == "example"


def test_client_config_is_validated_when_the_provider_is_saved(example_package, provider_factory):
    with pytest.raises(ValidationError) as exc:
        provider_factory(cloud_sync_driver="example", client_config={"region": "r1"})
    assert exc.value.message_dict["client_config"] == [
        "domain: is required: the DNS domain of the VMs, e.g. dc1.example.com"
    ]
    provider = provider_factory(
        cloud_sync_driver="example", client_config={"domain": " DC1.example.com."}
    )
    provider.refresh_from_db()
    assert provider.client_config == {"domain": "dc1.example.com"}  # normalized by the driver


def test_events_flow_end_to_end_through_the_custom_driver(client, example_provider, celery_worker):
    vm = {"uuid": "0b7e", "name": "web-1", "state": "running", "ip": "10.0.0.5"}
    post(
        client,
        example_provider,
        [
            {"msg_id": "m2", "seq": 2, "event": "vm.updated", "vm": {**vm, "state": "stopped"}},
            {"msg_id": "m1", "seq": 1, "event": "vm.created", "vm": vm},  # late: older seq
            {"msg_id": "hb", "seq": 3, "event": "vmbot.heartbeat"},
            {"msg_id": "bad", "seq": 4, "event": "vm.exploded", "vm": vm},
        ],
    )
    assert done(example_provider, "m1").status == Status.PROCESSED
    assert done(example_provider, "m2").status == Status.PROCESSED
    assert done(example_provider, "hb").status == Status.IGNORED
    bad = done(example_provider, "bad")
    assert bad.status == Status.FAILED
    assert bad.error.startswith("bad payload: unknown event 'vm.exploded'")
    host = CloudHost.objects.get(cloudprovider=example_provider, host_id="0b7e")
    assert host.hostname == "web-1.dc1.example.com"
    assert host.status == "stopped"  # seq 2 wins over the late seq 1
    assert list(host.ips.values_list("address", flat=True)) == ["10.0.0.5"]

    post(
        client,
        example_provider,
        {"msg_id": "m5", "seq": 5, "event": "vm.deleted", "vm": {"uuid": "0b7e"}},
    )
    assert done(example_provider, "m5").status == Status.PROCESSED
    assert not CloudHost.objects.filter(cloudprovider=example_provider, host_id="0b7e").exists()
    assert (
        CloudHost.all_objects.get(cloudprovider=example_provider, host_id="0b7e").deleted_at
        is not None
    )
