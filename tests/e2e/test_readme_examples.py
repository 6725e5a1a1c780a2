"""The README's copy-paste examples, run as written: the provider commands,
the ``curl`` posts of the bodies in examples/events/ through the endpoint to a
real Celery worker, the documented outcome of each (its ``→`` line), then the
REST API examples against what those events created.

Everything is read from README.md, so the test breaks when the README and
the files (or the code) part ways: a body file it names that is missing, a
body file nobody names, an outcome that changed, an API example that fails.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command

from sync.choices import EventStatusChoices as EventStatus
from sync.choices import SyncRunStatusChoices as RunStatus
from sync.models import CloudHost, CloudProvider, Event, SyncRun
from tests.e2e.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples" / "events"

BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
HOST_OUTCOME = re.compile(r'→ host "(?P<host>[^"]+)", status (?P<status>\w+)')
EVENT_OUTCOME = re.compile(r'→ .*?event (?P<status>\w+)(?:: "(?P<error>[^"]+)")?')
ENDPOINT_URL = "http://127.0.0.1:8000/cloud-sync/provider/$PROVIDER_ID/"
DATE_YESTERDAY = "$(date -u -d yesterday +%FT%TZ)"


@dataclass
class Sample:
    """One README example: create a provider, post a body, see an outcome."""

    command: list[str]  # cloudsync_add_provider and its arguments
    body: bytes
    body_file: str | None
    host: str | None = None
    host_status: str | None = None
    event_status: str | None = None
    event_error: str | None = None


def _lines(block: str) -> list[str]:
    """Logical lines of a shell block (backslash continuations joined)."""
    return block.replace("\\\n", " ").splitlines()


def _manage_args(line: str) -> list[str]:
    """``... .venv/bin/python manage.py <command> <args>`` -> [command, args...]."""
    words = shlex.split(line)
    return words[words.index("manage.py") + 1 :]


def _eval_inner(line: str) -> str:
    assert line.startswith('eval "$(') and line.endswith(')"'), line
    return line[len('eval "$(') : -2]


def _curl(line: str) -> list[str]:
    words = shlex.split(line)
    assert words[0] == "curl", line
    return words


def readme_samples() -> list[Sample]:
    """Every block that creates a provider with --shell and posts to its endpoint."""
    samples: list[Sample] = []
    for block in BLOCK.findall(README.read_text(encoding="utf-8")):
        lines = _lines(block)
        command: list[str] | None = None
        for index, line in enumerate(lines):
            line = line.strip()
            if line.startswith('eval "$(') and "cloudsync_add_provider" in line:
                command = _manage_args(_eval_inner(line))
                assert "--shell" in command, line
            elif line.startswith("curl ") and ENDPOINT_URL in line:
                assert command is not None, f"curl before its provider: {line}"
                words = _curl(line)
                assert "Authorization: Bearer $SECRET" in words, line
                if "--data-binary" in words:
                    ref = words[words.index("--data-binary") + 1]
                    assert ref.startswith("@"), line
                    body_file, body = ref[1:], (ROOT / ref[1:]).read_bytes()
                else:
                    body_file, body = None, words[words.index("-d") + 1].encode()
                sample = Sample(command=command, body=body, body_file=body_file)
                outcome = next(
                    (ln for ln in lines[index + 1 :] if "→" in ln or ln.startswith("curl")), ""
                )
                if match := HOST_OUTCOME.search(outcome):
                    sample.host, sample.host_status = match["host"], match["status"]
                elif match := EVENT_OUTCOME.search(outcome):
                    sample.event_status, sample.event_error = match["status"], match["error"]
                else:
                    pytest.fail(f"no documented outcome (→ line) after: {line}")
                samples.append(sample)
    return samples


def readme_api_block() -> list[str]:
    [block] = [b for b in BLOCK.findall(README.read_text(encoding="utf-8"))
               if "cloudsync_create_token" in b]
    return [ln.strip() for ln in _lines(block) if ln.strip() and not ln.strip().startswith("#")]


def test_readme_and_examples_folder_agree() -> None:
    samples = readme_samples()
    named = {s.body_file for s in samples if s.body_file}
    configs = {
        arg[1:] for s in samples for arg in s.command if arg.startswith("@examples/")
    }
    shipped = {f"examples/events/{p.name}" for p in EXAMPLES.glob("*.json")}
    assert named | configs == shipped  # every file is used, every file used exists
    drivers = {s.command[s.command.index("--driver") + 1] for s in samples}
    assert {"openstack", "aws.ec2", "generic"} <= drivers
    catalogue = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for path in shipped:  # each file's source is noted
        assert f"`{Path(path).name}`" in catalogue, path
    for path in shipped:
        json.loads((ROOT / path).read_text(encoding="utf-8"))


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path) -> None:
    """A machine without AWS credentials, as the README's outcome assumes."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _create_provider(command: list[str]) -> tuple[CloudProvider, str]:
    out = io.StringIO()
    call_command(*command, stdout=out, stderr=io.StringIO())
    values = dict(line.split("=", 1) for line in out.getvalue().splitlines())
    assert set(values) == {"PROVIDER_ID", "SECRET"}, out.getvalue()
    secret = shlex.split(values["SECRET"])[0]
    return CloudProvider.objects.get(pk=int(values["PROVIDER_ID"])), secret


def _headers(words: list[str]) -> tuple[dict[str, str], str | None]:
    meta: dict[str, str] = {}
    content_type = None
    for i, word in enumerate(words):
        if word == "-H":
            name, _, value = words[i + 1].partition(": ")
            if name.lower() == "content-type":
                content_type = value
            else:
                meta["HTTP_" + name.upper().replace("-", "_")] = value
    return meta, content_type


@pytest.mark.e2e
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_readme_examples_run_as_written(
    client, celery_worker, settings, monkeypatch, no_aws_credentials
) -> None:
    monkeypatch.chdir(ROOT)  # the README's relative paths (@examples/...)
    # The documented outcomes, sooner: retries after the same errors, quicker.
    settings.CLOUDSYNC_RETRY_MAX = 2
    settings.CLOUDSYNC_SYNC_RETRY_MAX = 1
    settings.CLOUDSYNC_RETRY_BASE_SECONDS = 0.05
    settings.CLOUDSYNC_RETRY_CAP_SECONDS = 0.1

    samples = readme_samples()
    assert len(samples) >= 4
    provider_id = None
    for sample in samples:
        provider, secret = _create_provider(sample.command)
        provider_id = provider.pk
        response = client.post(
            f"/cloud-sync/provider/{provider.pk}/",
            data=sample.body,
            content_type="application/x-www-form-urlencoded",  # what curl -d sends
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        assert response.status_code == 202, response.content
        assert response.json()["queued"] == 1
        if sample.host:
            host = wait_for(
                lambda p=provider, s=sample: CloudHost.objects.filter(
                    cloudprovider=p, hostname=s.host
                ).first()
            )
            assert host.status == sample.host_status, (sample.body_file, host.status)
            event = Event.objects.get(cloudprovider=provider)
            assert event.status == EventStatus.PROCESSED
        else:
            event = wait_for(
                lambda p=provider, s=sample: Event.objects.filter(
                    cloudprovider=p, status=s.event_status
                ).first(),
                timeout=30,
            )
            if sample.event_error:
                assert sample.event_error in event.error, event.error
            if sample.body_file:
                assert not CloudHost.all_objects.filter(cloudprovider=provider).exists()

    # The REST API block, line by line, against what the samples created.
    lines = readme_api_block()
    assert _manage_args(lines[0])[0] == "cloudsync_create_token"
    out = io.StringIO()
    call_command(*_manage_args(lines[0].split("$(", 1)[1].rstrip(")")), stdout=out,
                 stderr=io.StringIO())
    token = out.getvalue().strip()
    assert lines[1].startswith("export API=http://127.0.0.1:8000/api ")
    yesterday = subprocess.run(
        ["date", "-u", "-d", "yesterday", "+%FT%TZ"], capture_output=True, text=True, check=True
    ).stdout.strip()
    calls = [ln for ln in lines[2:] if ln.startswith("curl ")]
    assert len(calls) >= 7
    for line in calls:
        line = (
            line.replace(DATE_YESTERDAY, yesterday)
            .replace("$API", "/api")
            .replace("$AUTH", f"Authorization: Token {token}")
            .replace("$PROVIDER_ID", str(provider_id))
        )
        assert "$" not in line, line
        words = _curl(line)
        url = next(w for w in words if w.startswith("/api/"))
        meta, content_type = _headers(words)
        if "POST" in words:
            body = words[words.index("-d") + 1] if "-d" in words else ""
            response = client.post(url, data=body, content_type=content_type or "", **meta)
            assert response.status_code == 202, (line, response.content)
        else:
            response = client.get(url, **meta)
            assert response.status_code == 200, (line, response.content)
            data = response.json()  # (a cursor-paged list, /history/, has no count)
            found = data["count"] if "count" in data else len(data["results"])
            assert found >= 1, line  # each query finds a sample host (or its history)

    # The dry run the last line started: queued, then failed for want of credentials.
    run = wait_for(
        lambda: SyncRun.objects.filter(cloudprovider_id=provider_id, status=RunStatus.FAILED).first(),
        timeout=30,
    )
    assert "authentication failed" in run.error, run.error
    # The replayed dead event goes dead again; wait, so no task is left running.
    wait_for(
        lambda: Event.objects.filter(cloudprovider_id=provider_id, status=EventStatus.DEAD).exists(),
        timeout=30,
    )
