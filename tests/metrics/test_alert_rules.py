"""docs/prometheus/alerts.yml (the README's example alert rules): valid
rules (promtool when installed, else their structure), and every metric
they use is in a real scrape of /metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sync import metrics
from tests.metrics.scrape import parse

RULES = Path(__file__).resolve().parents[2] / "docs" / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\bcloudsync_[a-z_]+\b")


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_the_rules_file_is_valid():
    doc = yaml.safe_load(RULES.read_text())
    assert [group["name"] for group in doc["groups"]] == ["cloudsync"]
    names = [rule["alert"] for rule in rules()]
    assert names == ["CloudsyncEventLagHigh", "CloudsyncEventsNotTaken", "CloudsyncDeadLettersGrowing",
                     "CloudsyncFullSyncFailing"]
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["expr"]
        assert rule["annotations"]["summary"]
    promtool = shutil.which("promtool")
    if promtool:
        done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.django_db
def test_every_metric_the_rules_use_is_in_a_scrape(client):
    # a provider that had events, a dead one and two failed full syncs
    metrics.count_events(999_001, "noop", {("demo.thing", "processed"): 2, ("demo.thing", "dead"): 1})
    metrics.observe_lags(999_001, "noop", [0.5, 2.0])
    for _ in range(2):
        metrics.run_finished(provider_id=999_001, driver="noop", kind="full", outcome="failed",
                             duration=3.0, objects_listed=0, drift_healed=0, finished_at=0.0,
                             consecutive_failures=2)
    samples = parse(client.get("/metrics").content.decode())
    used = {name for rule in rules() for name in METRIC.findall(rule["expr"])}
    assert used == {"cloudsync_event_lag_seconds_bucket", "cloudsync_events_total",
                    "cloudsync_full_sync_consecutive_failures", "cloudsync_queue_oldest_age_seconds"}
    assert used <= set(samples), used - set(samples)


def _readme_yaml_blocks() -> list:
    readme = (RULES.parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Metrics (Prometheus)", 1)[1].split("\n## ", 1)[0]
    return [yaml.safe_load(block) for block in re.findall(r"^```yaml\n(.*?)^```", section,
                                                          re.S | re.M)]


def test_the_readme_shows_a_scrape_config_and_the_same_rules():
    scrape, readme_rules = _readme_yaml_blocks()
    [job] = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"

    def squeeze(text: str) -> str:
        return re.sub(r"\s+", "", text)

    assert [(r["alert"], squeeze(r["expr"])) for r in readme_rules] == [
        (r["alert"], squeeze(r["expr"])) for r in rules()]
