"""Model fields that encrypt their value at rest."""

from __future__ import annotations

from typing import Any

from django.db import models

from sync import crypto

__all__ = ["EncryptedJSONField", "EncryptedTextField"]


class EncryptedTextField(models.TextField):
    """A string stored as a Fernet token; Python code only sees clear text."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        if value is None or value == "":
            return value
        return crypto.encrypt(str(value))


class EncryptedJSONField(models.TextField):
    """A JSON value stored encrypted. Not queryable by content, by design."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return {}
        return crypto.decrypt_json(value)

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            value = {}
        return crypto.encrypt_json(value)

    def value_to_string(self, obj: Any) -> str:
        # dumpdata must never write credentials in clear.
        return "<encrypted>"
