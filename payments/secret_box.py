"""Secrets kept in the database (a shop's gateway secret), sealed with Fernet.

The key is derived (HKDF-SHA256) from DJANGO_SECRET_KEY, and the former keys in
DJANGO_SECRET_KEY_FALLBACKS still open what they sealed, so rotating the secret
key the Django way keeps every sealed secret readable (`unseal` tries each key
in turn). A sealed value is never shown: the admin and the commands show only whether one is set.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from payments.exceptions import SecretUnreadable

_INFO = b"merchant-payments secret box v1"


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _box() -> MultiFernet:
    return _box_of(settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))


@lru_cache(maxsize=8)
def _box_of(secret_key: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    """Derived once per set of keys: an IPN of a shop unseals its secret on every request."""
    return MultiFernet([_fernet(key) for key in (secret_key, *fallbacks) if key])


def seal(secret: str) -> str:
    """`secret` encrypted and authenticated with the current secret key (ASCII text)."""
    return _box().encrypt(secret.encode("utf-8")).decode("ascii")


def unseal(sealed: str) -> str:
    """What `seal` sealed, with the current key or a fallback; SecretUnreadable otherwise."""
    try:
        return _box().decrypt(sealed.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise SecretUnreadable(
            "a sealed secret cannot be opened with DJANGO_SECRET_KEY or its fallbacks: "
            "put the key it was sealed with in DJANGO_SECRET_KEY_FALLBACKS"
        ) from exc
