"""Database errors are told apart with real errors from the real server: an
outage is waited out (message kept), a deadlock is transient, a bad value or
statement is neither."""

from __future__ import annotations

import logging
import threading

import psycopg
import pytest
from django.db import DatabaseError, OperationalError, connection, transaction

from sync import db_outage
from sync.db_outage import DatabaseUnavailable, is_transient, is_unavailable, wait_out_outage
from sync.models import CloudProvider
from tests.reliability.conftest import database_down

pytestmark = pytest.mark.django_db(transaction=True)


def caught(work) -> BaseException:
    try:
        work()
    except BaseException as exc:  # noqa: BLE001 - the error is what the test inspects
        return exc
    raise AssertionError("no error")


def test_connection_refused_is_an_outage():
    with database_down():
        exc = caught(lambda: CloudProvider.objects.count())
    assert isinstance(exc, OperationalError)
    assert is_unavailable(exc) and is_transient(exc)


def test_a_terminated_backend_is_an_outage():
    CloudProvider.objects.count()  # open the connection
    pid = connection.connection.info.backend_pid
    dsn = connection.connection.info.dsn
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    exc = caught(lambda: CloudProvider.objects.count())
    assert isinstance(exc, OperationalError | DatabaseError) and is_unavailable(exc)
    connection.close()


def test_a_deadlock_is_transient_but_not_an_outage(provider_factory):
    one, two = provider_factory(), provider_factory()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def lock(first, second) -> None:
        try:
            with transaction.atomic():
                CloudProvider.objects.select_for_update().get(pk=first.pk)
                barrier.wait()
                CloudProvider.objects.select_for_update().get(pk=second.pk)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=lock, args=pair) for pair in ((one, two), (two, one))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 1, errors
    assert is_transient(errors[0]) and not is_unavailable(errors[0])


def test_a_bad_statement_is_neither():
    exc = caught(lambda: connection.cursor().execute("SELECT * FROM no_such_table"))
    assert not is_unavailable(exc) and not is_transient(exc)


def test_an_outage_is_waited_out_with_one_log_line(settings, caplog):
    settings.CLOUDSYNC_DB_WAIT_CAP_SECONDS = 0.05
    settings.CLOUDSYNC_DB_LOG_SECONDS = 3600
    db_outage._warn._last = float("-inf")
    calls: list[int] = []

    def work() -> int:
        calls.append(1)
        if len(calls) < 4:  # down for the first three tries
            with database_down():
                return CloudProvider.objects.count()
        return CloudProvider.objects.count()

    with caplog.at_level(logging.WARNING, logger="sync.db_outage"):
        assert wait_out_outage(work, what="testing") == 0
    assert len(calls) == 4
    lines = [r for r in caplog.records if r.name == "sync.db_outage"]
    assert len(lines) == 1 and "database unavailable while testing" in lines[0].getMessage()


def test_an_outage_longer_than_the_budget_gives_up_clearly(settings):
    settings.CLOUDSYNC_DB_WAIT_CAP_SECONDS = 0.05
    with database_down():
        exc = caught(lambda: wait_out_outage(CloudProvider.objects.count, what="testing",
                                             budget=0.3))
    assert isinstance(exc, DatabaseUnavailable) and "while testing" in str(exc)


def test_other_errors_are_not_retried():
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        connection.cursor().execute("SELECT * FROM no_such_table")

    with pytest.raises(DatabaseError):
        wait_out_outage(work, what="testing")
    assert calls == [1]


def test_a_statement_timeout_is_transient_not_an_outage():
    def slow() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 10")
            cursor.execute("SELECT pg_sleep(1)")

    exc = caught(slow)
    assert is_transient(exc) and not is_unavailable(exc)
