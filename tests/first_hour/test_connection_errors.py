"""A cloud that cannot be reached is reported once, as its root cause:
``cannot reach http://host:port: connection refused``, not urllib3's chain."""

from __future__ import annotations

import pytest
import requests
from keystoneauth1 import session as ks_session

from sync.drivers.base import NetworkError, root_cause, root_cause_text, unreachable_message
from tests.first_hour.procs import free_port, manage


def _raised(call) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("nothing raised")


def test_requests_connection_refused_is_one_line() -> None:
    port = free_port()
    exc = _raised(lambda: requests.get(f"http://127.0.0.1:{port}/v3/auth/tokens", timeout=5))
    assert isinstance(root_cause(exc), ConnectionRefusedError)
    assert unreachable_message(exc) == f"cannot reach http://127.0.0.1:{port}: connection refused"


def test_keystoneauth_connect_failure_is_one_line() -> None:
    port = free_port()
    url = f"https://user:pw@127.0.0.1:{port}/identity/v3/auth/tokens"
    exc = _raised(lambda: ks_session.Session().get(url, connect_retries=0))
    # the userinfo never shows, the path neither: only where and why
    assert unreachable_message(exc) == f"cannot reach https://127.0.0.1:{port}: connection refused"


def test_root_cause_follows_explicit_and_implicit_chains() -> None:
    def layered() -> None:
        try:
            try:
                raise TimeoutError("timed out")
            except TimeoutError:
                raise ValueError("HTTPConnectionPool(host='x', port=1): Read timed out")  # noqa: B904
        except ValueError as exc:
            raise NetworkError("listing servers failed") from exc

    exc = _raised(layered)
    assert root_cause_text(exc) == "timed out"
    assert unreachable_message(exc) == "cannot reach the cloud: timed out"


@pytest.fixture
def unreachable_provider(transactional_db, provider_factory):
    port = free_port()
    config = {
        "auth_url": f"http://127.0.0.1:{port}/v3",
        "username": "cloudsync",
        "password": "secret",
        "project_name": "admin",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
    }
    provider = provider_factory(cloud_sync_driver="openstack.ocata", client_config=config)
    return provider, port


def test_cloudsync_sync_reports_the_root_cause_once(unreachable_provider) -> None:
    from sync.models import SyncRun

    provider, port = unreachable_provider
    result = manage("cloudsync_sync", provider.name)
    run = SyncRun.objects.get(cloudprovider=provider)
    cause = f"cannot reach http://127.0.0.1:{port}: connection refused"
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"CommandError: sync run #{run.pk} failed: network error: "
        f"authenticating with Keystone failed: {cause}"
    ]
    assert cause not in result.stdout  # printed once, on stderr
    assert f"run #{run.pk} full of {provider.name}: failed" in result.stdout
    output = result.stdout + result.stderr
    for noise in ("Traceback", "HTTPConnectionPool", "NewConnectionError", "Max retries"):
        assert noise not in output
    assert run.error == f"network error: authenticating with Keystone failed: {cause}"


def test_cloudsync_test_connection_reports_the_root_cause(unreachable_provider) -> None:
    provider, port = unreachable_provider
    result = manage("cloudsync_test_connection", str(provider.pk))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "CommandError: network error: authenticating with Keystone failed: "
        f"cannot reach http://127.0.0.1:{port}: connection refused"
    ]
