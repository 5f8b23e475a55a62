"""Settings of the service processes the fault tests start: the tests' settings, and how long
the service waits for a database lock (FAULTS_DB_LOCK_TIMEOUT_MS), as an operator would set it.

PostgreSQL: `lock_timeout` and a `statement_timeout` for the service's sessions (through a
transaction pooler, DATABASE_POOLER=transaction: the lock timeout only, which
merchant.pooling sets in each transaction), and a short connect timeout. SQLite: the busy
timeout (20 s in production settings).
"""

import os

from tests.settings import *  # noqa: F403

_lock_ms = int(os.environ.get("FAULTS_DB_LOCK_TIMEOUT_MS", "0"))
_db = DATABASES["default"]  # noqa: F405
if _lock_ms:
    DATABASE_LOCK_TIMEOUT_MS = _lock_ms
    if _db["ENGINE"] == "django.db.backends.sqlite3":
        _db["OPTIONS"]["timeout"] = _lock_ms / 1000
    elif DATABASE_POOLER != "transaction":  # noqa: F405  (a pooler refuses startup options)
        _db.setdefault("OPTIONS", {})
        _db["OPTIONS"]["options"] = (
            f"-c lock_timeout={_lock_ms} -c statement_timeout={_lock_ms + 20_000}"
        )
if _db["ENGINE"] != "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {})["connect_timeout"] = 3
