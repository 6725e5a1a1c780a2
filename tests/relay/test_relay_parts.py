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
from cloudsync_relay.listener import Relay

from sync.models import Event
from tests.broker import broker_at, queued_messages
from tests.local_http import LocalHttpServer, QuietHandler
from tests.relay.waf import waf_in_front_of

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


def test_context_secrets_are_stripped_at_any_depth():
    ctxt = {
        "user_id": "u",
        "auth": {"user": "u", "token": "t1", "methods": ["password"],
                 "password": {"user": {"name": "admin", "password": "p"}}},
        "service_catalog": [{"endpoints": []}],
        "extra": [{"name": "a", "auth_token": "t2"}, ("x", {"os_secret_key": "k"})],
        "roles": ["admin", "member"],
    }  # fmt: skip
    assert notification.scrub_context(ctxt) == {
        "user_id": "u",
        "auth": {"user": "u", "methods": ["password"]},
        "extra": [{"name": "a"}, ["x", {}]],
        "roles": ["admin", "member"],
    }
    text = notification.encode(notification.to_body(ctxt, {"event_type": "e", "payload": {}}))
    assert b"t1" not in text and b"t2" not in text and b'"p"' not in text and b'"k"' not in text


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


def test_check_endpoint_says_a_503_is_temporary():
    class Unavailable(QuietHandler):  # cloudsync (or its proxy) while its broker is down
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"error": "queue unavailable, retry later; nothing was queued"}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = LocalHttpServer(Unavailable)
    try:
        url = f"{server.url}/cloud-sync/provider/1/"
        ok, line = check_endpoint(settings_for(url, "x"))
    finally:
        server.close()
    assert not ok
    assert line == (
        f"endpoint: {url}: the service is temporarily unavailable (503: queue unavailable, "
        "retry later; nothing was queued); the relay would hold notifications on the bus "
        "until it answers"
    )
    assert "not a cloudsync provider endpoint" not in line


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
    assert requires == [
        "oslo.messaging>=12.0", 'prometheus-client>=0.12; extra == "metrics"', "requests>=2.20",
    ]  # fmt: skip
    assert b"cloudsync-relay = cloudsync_relay.cli:main" in entry_points
    assert not [n for n in names if n.startswith(("sync/", "project/"))]
    # Django made unimportable: the relay must not need it (nor cloudsync).
    # prometheus_client too (the metrics extra): needed only with METRICS_PORT.
    probe = (
        "import sys; sys.modules['django'] = None; sys.modules['sync'] = None\n"
        "sys.modules['prometheus_client'] = None\n"
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

    # METRICS_PORT set without the extra: a clear message, exit 2, before the bus.
    probe = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "import cloudsync_relay.cli; sys.exit(cloudsync_relay.cli.main([]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDSYNC_RELAY_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**env, "PYTHONPATH": str(target), "CLOUDSYNC_RELAY_URL": "http://127.0.0.1:1/",
             "CLOUDSYNC_RELAY_SECRET": "s", "CLOUDSYNC_RELAY_METRICS_PORT": "9",
             "CLOUDSYNC_RELAY_TRANSPORT_URL": "rabbit://guest:guest@127.0.0.1:1/"},
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "cloudsync-relay: CLOUDSYNC_RELAY_METRICS_PORT (metrics_port) is set to 9 but "
        "prometheus_client is not installed: install the relay with its metrics extra, "
        "pip install 'cloudsync-relay[metrics]'"
    ) in done.stderr


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


# -- a batch as the listener hands it over (Relay.handle, without the bus) -----------


class Incoming:
    """What oslo.messaging hands the dispatcher for one message: ``ctxt`` and
    ``message`` as its rabbit driver unpacked them (hashable by identity)."""

    def __init__(self, n: int, payload: object = None, ctxt: object = None) -> None:
        self.ctxt = ctxt if ctxt is not None else {"user_id": "u"}
        self.message = {
            "event_type": "compute.instance.update", "priority": "INFO", "message_id": f"m-{n}",
            "publisher_id": "nova-compute:h", "payload": {"n": n} if payload is None else payload,
        }  # fmt: skip

    def __repr__(self) -> str:
        return self.message["message_id"]


def nested(depth: int) -> object:
    value: object = {}
    for _ in range(depth):
        value = {"a": [value]}
    return value


def relay_to(url: str, secret: str, **extra: str) -> Relay:
    env = {"CLOUDSYNC_RELAY_BACKOFF_BASE": "0.01", "CLOUDSYNC_RELAY_BACKOFF_CAP": "0.02"}
    return Relay(settings_for(url, secret, **env, **extra))


@pytest.mark.django_db(transaction=True)
def test_what_cannot_be_prepared_is_dropped_not_raised(
    runserver, provider_factory, empty_queue, caplog
):
    """A payload or a context nested too deep for json.dumps (RecursionError)
    is dropped as malformed with a log line; its neighbours are delivered.
    An exception out of handle() would make oslo.messaging requeue the whole
    batch at once, forever."""
    provider = provider_factory()
    relay = relay_to(f"{runserver}/cloud-sync/provider/{provider.pk}/", provider.endpoint_secret)
    batch = [Incoming(1), Incoming(2, payload=nested(100000)), Incoming(3),
             Incoming(4, ctxt={"deep": nested(100000)}), Incoming(5)]  # fmt: skip
    with caplog.at_level("WARNING", logger="cloudsync_relay"):
        assert relay.handle(batch) == set()
    total = relay.counters.total
    assert (total.relayed, total.dropped, total.requeued, total.posts) == (3, 2, 0, 1)
    drops = [r.getMessage() for r in caplog.records if "dropped a malformed" in r.getMessage()]
    assert len(drops) == 2, drops
    assert "not JSON-serializable: maximum recursion depth exceeded" in drops[0]
    assert "RecursionError: maximum recursion depth exceeded" in drops[1]
    assert "message_id='m-2'" in drops[0] and "message_id='m-4'" in drops[1]


@pytest.mark.django_db(transaction=True)
def test_an_unexpected_delivery_error_requeues_with_backoff(runserver, provider_factory, caplog):
    """A secret requests cannot put in a header (UnicodeEncodeError, not a
    RequestException): the batch is requeued after the shared backoff."""
    provider = provider_factory()
    relay = relay_to(f"{runserver}/cloud-sync/provider/{provider.pk}/", "s\u20accret")
    batch = [Incoming(1), Incoming(2)]
    with caplog.at_level("WARNING", logger="cloudsync_relay"):
        assert relay.handle(batch) == set(batch)
        assert relay.handle(batch) == set(batch)
    assert relay.backoff._failures == 2  # waited, growing, before each requeue
    assert relay.counters.total.requeued == 4 and relay.counters.total.dropped == 0
    text = caplog.text
    assert "unexpected error while relaying 2 notification(s)" in text
    assert "2 notification(s) requeued in" in text and "UnicodeEncodeError" in text


@pytest.fixture
def waf(runserver):
    server = waf_in_front_of(runserver)
    yield server.url
    server.close()


@pytest.mark.django_db(transaction=True)
def test_a_notification_failing_alone_is_isolated_then_given_up(
    waf, provider_factory, empty_queue, caplog
):
    """A batch answered 403 is halved until the culprit is alone; its
    neighbours are delivered. Then it is posted alone, after the others of
    its batch; each time it fails while the endpoint accepts others counts,
    and at MAX_ATTEMPTS it is dropped (ERROR line), never before."""
    provider = provider_factory()
    relay = relay_to(f"{waf}/cloud-sync/provider/{provider.pk}/", provider.endpoint_secret,
                     CLOUDSYNC_RELAY_MAX_ATTEMPTS="3")  # fmt: skip
    poison = Incoming(0, payload={"note": "poison"})
    with caplog.at_level("WARNING", logger="cloudsync_relay"):
        requeue = relay.handle([Incoming(1), Incoming(2), poison, Incoming(3), Incoming(4)])
        assert requeue == {poison} or len(requeue) == 3  # depends on where the halves fall
        rounds = 1
        while requeue and rounds < 10:
            # as the bus hands them back, with new notifications arriving
            batch = [*requeue, Incoming(10 + rounds)]
            requeue = relay.handle(batch)
            rounds += 1
    assert requeue == set()
    total = relay.counters.total
    assert total.relayed == 4 + rounds - 1 and total.dropped == 1
    given_up = [r for r in caplog.records if "given up" in r.getMessage()]
    assert len(given_up) == 1 and given_up[0].levelname == "ERROR"
    assert "message_id='m-0'" in given_up[0].getMessage()
    assert "3 times alone" in given_up[0].getMessage()
    assert "HTTP 403: <html>Request blocked by WAF</html>" in given_up[0].getMessage()
    assert rounds == 3  # counted from the first round: the halves without it passed


@pytest.mark.django_db(transaction=True)
def test_an_outage_never_gives_a_notification_up(runserver, provider_factory, empty_queue):
    """Every POST answered 503 (the service's broker down): batches are halved
    down to one notification, but as nothing else is accepted meanwhile no
    failure counts; however many rounds, nothing is dropped, and all of it
    is delivered when the service is back."""
    provider = provider_factory()
    relay = relay_to(f"{runserver}/cloud-sync/provider/{provider.pk}/", provider.endpoint_secret,
                     CLOUDSYNC_RELAY_MAX_ATTEMPTS="2")  # fmt: skip
    batch = {Incoming(n) for n in range(8)}
    with broker_at("redis://127.0.0.1:1/0"):
        for _ in range(12):  # enough for each to have failed alone, some several times
            assert relay.handle(sorted(batch, key=repr)) == batch
    assert relay.counters.total.dropped == 0
    assert len(relay.attempts._entries) == 8
    # cheap: at most one halving per round (no POST for the rest once a half failed)
    assert relay.counters.total.posts <= 4 * 12
    assert relay.handle(sorted(batch, key=repr)) == set()
    total = relay.counters.total
    assert (total.relayed, total.dropped) == (8, 0)
