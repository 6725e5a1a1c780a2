"""``field__any=values``: membership in a list as one array parameter.

On PostgreSQL ``"col" = ANY(%s)`` with the whole list as one array, instead
of ``IN (%s, %s, …)``: psycopg caches the parsing of a query only up to 50
parameters, so every ``IN`` of a bulk batch (hundreds to a thousand ids)
was re-parsed and each value quoted in Python (~9 ms per statement of 1,000
ids, measured in ``bench/fullsync.py``). Other databases get ``IN (...)``.
"""

from __future__ import annotations

import typing

from django.db.models import Field, ForeignObject, Lookup

__all__ = ["AnyOf", "TextArray"]


class TextArray(list):
    """A list of str sent to Postgres as one ``text[]`` literal, escaped with
    ``str.replace`` (in C): psycopg's own list dumper runs a regular
    expression per element in Python (2.2 → 0.7 ms per 1,000 ids; a 100k
    full sync sends 1.6 million). A plain list everywhere else."""


try:
    import psycopg
    from psycopg.adapt import Dumper
except ImportError:  # (SQLite only)
    psycopg = None
else:

    class _TextArrayDumper(Dumper):
        oid = psycopg.postgres.types["text"].array_oid

        def dump(self, obj: list[str]) -> bytes:
            # Every element quoted: NULL, commas, braces and spaces stay text.
            quoted = ['"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in obj]
            return ("{" + ",".join(quoted) + "}").encode()

    # Before any connection: Django's adapters map (psycopg_any) copies these.
    psycopg.adapters.register_dumper(TextArray, _TextArrayDumper)


@Field.register_lookup
class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self) -> list:
        return list(self.rhs)

    def as_sql(self, compiler: typing.Any, connection: typing.Any) -> tuple[str, list]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(v, connection, prepared=False) for v in self.rhs]
        if connection.vendor == "postgresql":
            if values and all(type(v) is str for v in values):
                values = TextArray(values)
            return f"{lhs} = ANY(%s)", [*lhs_params, values]
        if not values:
            return "1 = 0", list(lhs_params)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]


ForeignObject.register_lookup(AnyOf)  # related fields keep their own lookup list
