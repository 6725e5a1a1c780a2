"""Encryption at rest for provider credentials (Fernet, key rotation via MultiFernet)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

__all__ = ["decrypt", "decrypt_json", "encrypt", "encrypt_json", "new_secret", "InvalidToken"]


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = [k.strip() for k in settings.CLOUDSYNC_ENCRYPTION_KEYS if k.strip()]
    if not keys:
        # Development fallback: derived from SECRET_KEY. Production sets
        # CLOUDSYNC_ENCRYPTION_KEYS so rotating SECRET_KEY does not lose data.
        digest = hashlib.sha256(("cloudsync:" + settings.SECRET_KEY).encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(k.encode()) for k in keys])


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def encrypt_json(value: Any) -> str:
    return encrypt(json.dumps(value, sort_keys=True))


def decrypt_json(token: str) -> Any:
    return json.loads(decrypt(token))


def new_secret() -> str:
    """A new endpoint secret: 32 random bytes, URL-safe (fits Basic auth and ?token=)."""
    return secrets.token_urlsafe(32)
