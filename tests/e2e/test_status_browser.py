"""The status pages in a real browser (headless Chromium through selenium),
after a real worker processed events and full syncs ran against the fake
OpenStack: the figures and chart data the page shows are the ones the
scenario produced, and a screenshot of each page is kept as a CI artifact
(``CLOUDSYNC_ARTIFACTS``, default a temporary directory; paths in the log).

The scenario: 20 servers synced by a first full sync; then 10 are deleted
in the cloud and only 7 of their delete notifications are posted (3
withheld), with 2 notifications the driver ignores and 1 it refuses; the
second full sync heals the 3: event coverage 70 % / 30 %."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import User

from sync import runs, status
from sync.choices import EventStatusChoices as Status
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import Event, SyncRun
from tests.conftest import serve_wsgi
from tests.e2e.conftest import wait_for
from tests.status.scenario import bad_payload, delete_end, delete_start

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def live_server_url() -> Iterator[str]:
    """The project, static files included (the admin's look), served in threads."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler

    with serve_wsgi(StaticFilesHandler(WSGIHandler()), threaded=True) as url:
        yield url


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver are not installed "
                    "(apt-get install -y chromium chromium-driver; .ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def artifacts() -> Path:
    base = Path(os.environ.get("CLOUDSYNC_ARTIFACTS") or tempfile.gettempdir())
    path = base / "cloudsync-status"
    path.mkdir(parents=True, exist_ok=True)
    return path


def ended(run: SyncRun) -> SyncRun | None:
    return SyncRun.objects.exclude(status=RunStatus.RUNNING).filter(pk=run.pk).first()


def full_sync(provider) -> SyncRun:
    run = runs.start_run(provider, "full", triggered_by="test")
    done = wait_for(lambda: ended(run), timeout=60)
    assert done.status == RunStatus.SUCCEEDED, done.error
    return done


def figure(root, name: str) -> str:
    return root.find_element("css selector", f'[data-figure="{name}"]').text.strip()


def test_status_pages_in_chromium(fake_openstack, provider_factory, celery_worker,
                                  live_server_url, browser, artifacts, record_property):
    fake_openstack.data.add_flavors(1)
    fake_openstack.data.add_image()
    fake_openstack.data.add_servers(20, with_ports=False)
    provider = provider_factory(name="browser-cloud", cloud_sync_driver="openstack.ocata",
                                client_config=fake_openstack.client_config())
    first = full_sync(provider)

    gone = sorted(fake_openstack.data.servers.records)[:10]
    for server_id in gone:
        fake_openstack.data.delete_server(server_id)
    messages = [*(delete_end(s) for s in gone[:7]), delete_start(gone[7]), delete_start(gone[8]),
                bad_payload()]
    endpoint = f"{live_server_url}/cloud-sync/provider/{provider.pk}/"
    for message in messages:
        answer = requests.post(endpoint, data=json.dumps(message), timeout=10,
                               headers={"Authorization": f"Bearer {provider.endpoint_secret}"})
        assert answer.status_code == 202, answer.text
    wait_for(lambda: Event.objects.filter(cloudprovider=provider).exclude(
        status=Status.QUEUED).count() == 10, timeout=30)
    second = full_sync(provider)
    assert (second.events_applied, second.drift_healed) == (7, 3)
    expected = status.provider_status(provider)["events"]
    assert expected["totals"] == {"received": 10, "processed": 7, "ignored": 2, "failed": 1,
                                  "dead": 0}
    assert expected["lag_p50_seconds"] is not None

    User.objects.create_superuser("browser-admin", password="pw-browser-123")
    browser.get(f"{live_server_url}/admin/login/?next=/status/")
    browser.find_element("id", "id_username").send_keys("browser-admin")
    browser.find_element("id", "id_password").send_keys("pw-browser-123")
    browser.find_element("css selector", "input[type=submit]").click()
    wait_for(lambda: "/status/" in browser.current_url and browser.find_elements(
        "css selector", ".status-overview"), timeout=30)

    row = browser.find_element("css selector", f'tr[data-provider="{provider.pk}"]')
    assert [figure(row, o) for o in ("received", "processed", "ignored", "failed", "dead")] == [
        "10", "7", "2", "1", "0"]
    assert figure(row, "drift_healed") == "3"
    assert figure(row, "event_coverage") == "70 %"
    assert figure(row, "failed_now") == "1"
    chart = browser.find_element("css selector", 'svg[data-chart="events"]')
    assert json.loads(chart.get_attribute("data-totals"))["processed"] == 7
    shot = artifacts / "status-overview.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    record_property("artifact", str(shot))

    row.find_element("link text", "browser-cloud").click()
    wait_for(lambda: browser.find_elements("css selector", ".status-provider"), timeout=30)
    page = browser.find_element("css selector", ".status-provider")
    assert [figure(page, o) for o in ("received", "processed", "ignored", "failed", "dead")] == [
        "10", "7", "2", "1", "0"]
    assert figure(page, "lag_p50_seconds") == f"≤ {expected['lag_p50_seconds']} s"
    assert figure(page, "lag_p99_seconds") == f"≤ {expected['lag_p99_seconds']} s"
    assert figure(page, "last_full_sync_status") == "succeeded"
    assert figure(page, "drift_healed") == "3"
    assert figure(page, "events_applied") == "7"
    assert figure(page, "event_coverage") == "70 %"
    assert figure(page, "objects_listed") == str(sum(
        n for counts in second.counts.values() for o, n in counts.items() if o != "deleted"))
    assert figure(page, "dead_now") == "0"
    assert browser.find_element("id", "replay-link").get_attribute("href").endswith(
        f"cloudprovider__id__exact={provider.pk}&status__exact=dead")
    events = browser.find_element("css selector", 'svg[data-chart="events"]')
    assert json.loads(events.get_attribute("data-totals")) == expected["totals"]
    series = {g.get_attribute("data-series"): json.loads(g.get_attribute("data-values"))
              for g in events.find_elements("css selector", "g.series")}
    assert {name: sum(values) for name, values in series.items()} == expected["totals"]
    assert events.find_elements("css selector", "polyline, circle")  # something was drawn
    lag = browser.find_element("css selector", 'svg[data-chart="lag"]')
    assert json.loads(lag.get_attribute("data-totals"))["lag_p99_seconds"] == \
        expected["lag_p99_seconds"]
    [bar] = browser.find_elements("css selector", 'svg[data-chart="coverage"] g.bar')
    assert (bar.get_attribute("data-run"), bar.get_attribute("data-events-applied"),
            bar.get_attribute("data-drift-healed"), bar.get_attribute("data-coverage")) == (
        str(second.pk), "7", "3", "70.0")
    assert first.events_applied is None  # the first run has no previous one: not charted
    shot = artifacts / "status-provider.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    record_property("artifact", str(shot))
