"""cloudsync-relay's parts against the real endpoint (a live server), without
the bus: what each answer means for a batch, the secrets stripped from
contexts, the settings, ``--check``; and the package installed on its own
(no Django, no cloudsync)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cloudsync_relay import config, notification
from cloudsync_relay.check import check_endpoint
from cloudsync_relay.delivery import Delivery, pack

from sync.models import Event
from tests.broker import broker_at, queued_messages

ROOT = Path(__file__).resolve().parents[2]
RELAY_DIR = ROOT / "relay"


def item(n: int, size: int = 0) -> tuple[int, bytes]:
    body = {"event_type": "demo", "message_id": f"m-{n}", "payload": {"pad": "x" * size}}
    return n, json.dumps(body).encode()


# -- what is sent ------------------------------------------------------------


def test_context_secrets_are_stripped_and_the_rest_kept():
    ctxt = {
        "auth_token": "t", "auth_token_info": {"token": 1}, "service_catalog": [1],
        "Service_Token": "s", "os_password": "p", "trust_secret": "x", "msg_id": None,
        "reply_q": None, "client_timeout": None, "user_id": "u", "project_id": "p1",
        "project_name": "demo", "request_id": "req-1", "roles": ["admin"], "is_admin": True,
    }  # fmt: skip
    assert notification.scrub_context(ctxt) == {
        "user_id": "u", "project_id": "p1", "project_name": "demo", "request_id": "req-1",
        "roles": ["admin"], "is_admin": True,
    }  # fmt: skip
    body = notification.to_body(
        ctxt,
        {"event_type": "image.create", "priority": "info", "payload": {"id": "i"},
         "message_id": "m1", "timestamp": "2024-01-01 00:00:00", "publisher_id": "image.h"},
    )  # fmt: skip
    assert body == {
        "ctxt": notification.scrub_context(ctxt), "publisher_id": "image.h",
        "event_type": "image.create", "priority": "INFO", "payload": {"id": "i"},
        "metadata": {"message_id": "m1", "timestamp": "2024-01-01 00:00:00"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ([1, 2], "not a JSON object but list"),
        ({"payload": {}}, "no event_type"),
        ({"event_type": " ", "payload": {}}, "no event_type"),
        ({"event_type": "instance.update"}, "instance.update: no payload"),
    ],
)
def test_what_is_not_a_notification_is_refused_with_a_reason(message, reason):
    with pytest.raises(notification.Malformed, match=reason):
        notification.to_body({}, message)


def test_batches_are_cut_under_the_body_limit():
    items = [item(n, 300) for n in range(10)]
    size = len(items[0][1])
    runs = pack(items, max_bytes=3 * size + 4)  # "[" a "," b "," c "]"
    assert [len(r) for r in runs] == [3, 3, 3, 1]
    assert [n for r in runs for n, _ in r] == list(range(10))
    assert [len(r) for r in pack([item(0, 5000)], 1024)] == [1]  # too big alone: still sent


# -- the delivery contract against the real endpoint --------------------------


@pytest.mark.django_db(transaction=True)
def test_answers_map_to_deliver_drop_or_retry(runserver, provider_factory, empty_queue, settings):
    settings.CLOUDSYNC_MAX_BODY_BYTES = 2048
    provider = provider_factory()
    url = f"{runserver}/cloud-sync/provider/{provider.pk}/"
    good = Delivery(url, provider.endpoint_secret, max_body_bytes=8192)

    outcome = good.send([item(n) for n in range(5)])  # one POST, one batch body
    assert (outcome.delivered, outcome.dropped, outcome.retry, outcome.posts) == (
        [0, 1, 2, 3, 4], [], [], 1,
    )  # fmt: skip
    [message] = queued_messages()
    assert message["headers"]["task"] == "sync.tasks.ingest"

    # 413 for one notification in a batch: halved until it is alone, dropped;
    # its neighbours are delivered.
    outcome = good.send([item(10), item(11, 5000), item(12), item(13)])
    assert outcome.delivered == [10, 12, 13]
    assert [(n, r.split(":")[0]) for n, r in outcome.dropped] == [(11, "HTTP 413")]

    # 401 (a rotated secret) and 503 (Redis down) are retried, not dropped;
    # so is a network error. The rest of the batch is not even posted.
    wrong = Delivery(url, "not-the-secret", max_body_bytes=200)
    outcome = wrong.send([item(20), item(21)])
    assert (outcome.retry, outcome.posts) == ([20, 21], 1)
    assert outcome.retry_reason.startswith("HTTP 401")
    with broker_at("redis://127.0.0.1:1/0"):
        outcome = good.send([item(22)])
    assert outcome.retry == [22] and outcome.retry_reason.startswith("HTTP 503")
    down = Delivery("http://127.0.0.1:1/cloud-sync/provider/1/", "s", timeout=2)
    outcome = down.send([item(23)])
    assert outcome.retry == [23] and "connection refused" in outcome.retry_reason

    # 404 / 409: refused for good, every notification dropped with the reason.
    gone = Delivery(f"{runserver}/cloud-sync/provider/999999/", "s")
    assert [r for _, r in gone.send([item(30)]).dropped] == [
        "HTTP 404: no cloud provider with id 999999"
    ]
    provider.cloud_sync_enabled = False
    provider.save()
    from sync.endpoint import clear_provider_cache

    clear_provider_cache()
    outcome = good.send([item(31), item(32)])
    assert [n for n, _ in outcome.dropped] == [31, 32]
    assert outcome.dropped[0][1].startswith("HTTP 409")


# -- --check -------------------------------------------------------------------


def settings_for(url: str, secret: str, **extra: str) -> config.Settings:
    env = {"CLOUDSYNC_RELAY_URL": url, "CLOUDSYNC_RELAY_SECRET": secret, **extra}
    return config.load(environ=env)


@pytest.mark.django_db(transaction=True)
def test_check_endpoint_says_what_is_wrong_and_queues_nothing(
    runserver, provider_factory, empty_queue
):
    provider = provider_factory()
    url = f"{runserver}/cloud-sync/provider/{provider.pk}/"
    ok, line = check_endpoint(settings_for(url, provider.endpoint_secret))
    assert ok, line
    assert line == f"endpoint: {url} accepts the credentials (nothing was queued)"
    assert queued_messages() == [] and not Event.objects.exists()

    ok, line = check_endpoint(settings_for(url, "wrong"))
    assert not ok and "refused the credentials (401)" in line
    ok, line = check_endpoint(settings_for(f"{runserver}/cloud-sync/provider/999999/", "x"))
    assert not ok and "no such provider (404)" in line
    ok, line = check_endpoint(settings_for("http://127.0.0.1:1/cloud-sync/provider/1/", "x"))
    assert not ok and "cannot be reached: network error: connection refused" in line
    ok, line = check_endpoint(settings_for(f"{runserver}/healthz", "x"))
    assert not ok and "not a cloudsync provider endpoint?" in line


def relay_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSYNC_RELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "cloudsync_relay", *args],
        env={**clean, "PYTHONPATH": str(RELAY_DIR), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.django_db(transaction=True)
def test_check_command_exit_status_and_output(runserver, provider_factory, empty_queue):
    from tests.rabbit import RABBIT_URL, require_rabbit

    require_rabbit()
    provider = provider_factory()
    env = {
        "CLOUDSYNC_RELAY_URL": f"{runserver}/cloud-sync/provider/{provider.pk}/",
        "CLOUDSYNC_RELAY_SECRET": provider.endpoint_secret,
        "CLOUDSYNC_RELAY_TRANSPORT_URL": RABBIT_URL,
        "CLOUDSYNC_RELAY_POOL": f"cloudsync-check-{os.getpid()}",
    }
    done = relay_command("--check", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("bus: rabbit://guest@127.0.0.1:5672/ answers; queue ")
    assert "not declared yet" in lines[0]  # --check declares nothing
    assert lines[1].endswith("accepts the credentials (nothing was queued)")
    assert lines[2] == "OK"
    assert queued_messages() == []

    done = relay_command(
        "--check", env={**env, "CLOUDSYNC_RELAY_TRANSPORT_URL": "rabbit://guest:guest@127.0.0.1:1/",
                        "CLOUDSYNC_RELAY_SECRET": "wrong"},
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("bus: cannot connect: 127.0.0.1:1: ")
    assert "refused the credentials (401)" in done.stdout and done.stdout.endswith("FAILED\n")

    done = relay_command("--check", env={"CLOUDSYNC_RELAY_URL": "http://x/"})
    assert done.returncode == 2
    assert "missing setting: secret (CLOUDSYNC_RELAY_SECRET or CLOUDSYNC_RELAY_SECRET_FILE)" in (
        done.stderr
    )


# -- settings ---------------------------------------------------------------------


def test_settings_from_file_and_environment(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    conf = tmp_path / "relay.conf"
    conf.write_text(
        "[relay]\nurl = https://cs.example/cloud-sync/provider/3/\n"
        f"secret_file = {secret}\nbatch_size = 20\ntopics = notifications\n"
        "[oslo_messaging_rabbit]\nheartbeat_timeout_threshold = 30\n"
    )
    settings = config.load(str(conf), environ={"CLOUDSYNC_RELAY_BATCH_SIZE": "5"})
    assert settings.secret == "s3cret"
    assert settings.batch_size == 5  # the environment wins
    assert settings.topics == ["notifications"]
    assert settings.exchanges == ["nova", "glance", "neutron", "keystone"]
    assert settings.pool == "cloudsync"
    assert settings.conf.oslo_messaging_rabbit.heartbeat_timeout_threshold == 30

    with pytest.raises(config.ConfigError, match="CLOUDSYNC_RELAY_BATCH_SIZE='many'"):
        config.load(str(conf), environ={"CLOUDSYNC_RELAY_BATCH_SIZE": "many"})
    with pytest.raises(config.ConfigError, match="url must start with http"):
        config.load(environ={"CLOUDSYNC_RELAY_URL": "cs.example", "CLOUDSYNC_RELAY_SECRET": "s"})
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(str(tmp_path / "missing.conf"), environ={})


# -- installable on its own ------------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel, target): the package built as a wheel and pip-installed on its
    own (--no-deps: its two dependencies come from the venv) into a folder."""
    import shutil

    tmp = tmp_path_factory.mktemp("relay-install")
    wheel_dir, target, source = tmp / "dist", tmp / "site", tmp / "relay"
    # built from a copy: setuptools writes build/ and *.egg-info next to the sources
    shutil.copytree(RELAY_DIR, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))  # fmt: skip
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(wheel_dir), str(source)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = wheel_dir.glob("cloudsync_relay-*.whl")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
         "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    return wheel, target


def test_the_package_installs_alone_and_runs_without_django(installed, tmp_path):
    wheel, target = installed
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith("/METADATA"))).decode()
        entry_points = zf.read(next(n for n in zf.namelist() if n.endswith("entry_points.txt")))
        names = zf.namelist()
    requires = sorted(line.split(":", 1)[1].strip() for line in meta.splitlines()
                      if line.startswith("Requires-Dist:"))  # fmt: skip
    assert requires == ["oslo.messaging>=12.0", "requests>=2.20"]
    assert b"cloudsync-relay = cloudsync_relay.cli:main" in entry_points
    assert not [n for n in names if n.startswith(("sync/", "project/"))]
    # Django made unimportable: the relay must not need it (nor cloudsync).
    probe = (
        "import sys; sys.modules['django'] = None; sys.modules['sync'] = None\n"
        "import cloudsync_relay.cli, cloudsync_relay.listener, cloudsync_relay.check\n"
        "sys.argv = ['cloudsync-relay', '--help']; cloudsync_relay.cli.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(target)}, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "usage: cloudsync-relay" in done.stdout
    assert (target / "bin" / "cloudsync-relay").exists()


def test_shipped_example_config_and_unit_name_real_settings():
    env = {"CLOUDSYNC_RELAY_SECRET": "s"}  # the example's secret_file does not exist here
    settings = config.load(str(RELAY_DIR / "relay.conf.example"), environ=env)
    assert settings.url == "https://cloudsync.example.com/cloud-sync/provider/3/"
    assert settings.topics == ["notifications", "versioned_notifications"]
    unit = (RELAY_DIR / "cloudsync-relay.service").read_text()
    names = {opt.dest.upper() for opt in config.OPTIONS} | {"CONFIG_FILE"}
    used = set(re.findall(r"CLOUDSYNC_RELAY_([A-Z_]+)", unit))
    assert used and used <= names, used - names
    assert "ExecStartPre=-/usr/local/bin/cloudsync-relay --check" in unit
    assert "COPY . /src" in (RELAY_DIR / "Containerfile").read_text()  # built from relay/


# -- the README's relay block, as written -------------------------------------------


def readme_relay_block() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"^```sh\n(.*?)^```", readme, re.S | re.M)
               if "cloudsync-relay --check" in b]  # fmt: skip
    return block.replace("\\\n", " ").splitlines()


@pytest.mark.django_db(transaction=True)
def test_readme_relay_block_runs_as_written(installed, runserver, empty_queue, monkeypatch):
    """Run line by line. Substitutions, each for the shared machine: the
    relay goes into a folder (--target) instead of the shared venv; the
    server listens on a free port, not 8000; pool, topics and exchanges are
    named for this test (added to the environment) so it shares nothing."""
    import io
    import shlex

    from django.core.management import call_command

    from tests.rabbit import Bus, require_rabbit

    require_rabbit()
    monkeypatch.chdir(ROOT)
    _, target = installed
    lines = readme_relay_block()
    eval_line, pip_line, export_line, check_line, *expected, run_line = lines
    words = shlex.split(eval_line[len('eval "$(') : -2])
    out = io.StringIO()
    call_command(*words[words.index("manage.py") + 1 :], stdout=out, stderr=io.StringIO())
    values = dict(line.split("=", 1) for line in out.getvalue().splitlines())
    provider_id, secret = values["PROVIDER_ID"], shlex.split(values["SECRET"])[0]

    assert pip_line == ".venv/bin/pip install ./relay"
    bus = Bus()
    pool = bus.pool("readme")
    here = runserver.removeprefix("http://")

    def expand(text: str) -> str:
        return (text.replace("$PROVIDER_ID", provider_id).replace("$SECRET", secret)
                .replace("127.0.0.1:8000", here))  # fmt: skip

    assert export_line.startswith("export ")
    env = dict(word.split("=", 1) for word in shlex.split(expand(export_line))[1:])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSYNC_RELAY_")}
    env = {**clean, **env, "PYTHONPATH": str(target), "CLOUDSYNC_RELAY_POOL": pool,
           "CLOUDSYNC_RELAY_TOPICS": ",".join(bus.topics),
           "CLOUDSYNC_RELAY_EXCHANGES": ",".join(bus.exchanges)}  # fmt: skip
    binary = str(target / "bin" / "cloudsync-relay")
    try:
        assert check_line == ".venv/bin/cloudsync-relay --check"
        done = subprocess.run([sys.executable, binary, "--check"], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        want = [expand(line.strip().removeprefix("#").strip()).replace('"cloudsync"', f'"{pool}"')
                for line in expected]  # fmt: skip
        assert done.stdout.splitlines() == want
        assert queued_messages() == []

        assert run_line == ".venv/bin/cloudsync-relay"
        proc = subprocess.Popen([sys.executable, binary], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        from tests.e2e.conftest import wait_for

        wait_for(lambda: (bus.queue_depth(pool) or (0, 0))[1] >= 1, timeout=30)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output
        assert " relaying notifications_" in output and "stopped; since start relayed 0" in output
    finally:
        bus.cleanup()
