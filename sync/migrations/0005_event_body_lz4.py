"""Inbox bodies compressed with lz4 instead of pglz on PostgreSQL (14+).

Nova notifications are 2-4 KB, so most bodies are compressed when stored;
pglz costs about half of the batch INSERT, lz4 a fifth. Only new values are
affected. Servers built without lz4, and other databases, keep their default.
"""

from django.db import migrations


def _lz4(apps, schema_editor, enable: bool = True) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        row = cursor.fetchone()
        if not row or not row[0]:
            return
        method = "lz4" if enable else "DEFAULT"
        for column in ("body", "result"):
            cursor.execute(f'ALTER TABLE "sync_event" ALTER COLUMN "{column}" SET COMPRESSION {method}')


def _default(apps, schema_editor) -> None:
    _lz4(apps, schema_editor, enable=False)


class Migration(migrations.Migration):
    dependencies = [("sync", "0004_port_membership_versions")]

    operations = [migrations.RunPython(_lz4, _default)]
