"""PAYMENTS_RETURN_HOSTS (the default shop's return hosts): a bare host allows any http(s) URL
on it; an origin pins scheme and port.

`shop.example` allows http and https on any port (the behaviour before
origins); `https://shop.example` allows only https on 443, and
`https://shop.example:8443` only https on 8443. Entries are checked at start
(system check payments.E008 names a bad one), and a bad entry allows nothing.
The hostile URLs of tests/hostile/test_security.py stay refused with origins.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from payments.checks import check_return_hosts
from payments.models import Shop
from payments.selectors import return_host_allowed
from tests.hostile.test_security import HOSTILE_RETURN_URLS

BASE_DIR = Path(__file__).resolve().parents[2]
# The default shop allows PAYMENTS_RETURN_HOSTS (other shops: their own return_hosts,
# tests/payments/test_shop_api.py). Not saved: these tests need no database.
DEFAULT_SHOP = Shop(name="default", is_default=True)


@pytest.fixture(autouse=True)
def own_host(settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"


CASES = [
    # (entry, url, allowed)
    ("shop.example", "http://shop.example/back", True),
    ("shop.example", "https://shop.example:8443/back", True),
    ("SHOP.example", "https://shop.EXAMPLE/back", True),
    ("https://shop.example", "https://shop.example/back", True),
    ("https://shop.example", "https://shop.example:443/back", True),
    ("https://shop.example/", "https://shop.example/back?x=1#top", True),
    ("https://shop.example", "http://shop.example/back", False),
    ("https://shop.example", "https://shop.example:8443/back", False),
    ("https://shop.example", "https://www.shop.example/back", False),
    ("https://shop.example:8443", "https://shop.example:8443/back", True),
    ("https://shop.example:8443", "https://shop.example/back", False),
    ("https://shop.example:8443", "http://shop.example:8443/back", False),
    ("http://shop.example", "http://shop.example:80/back", True),
    ("http://shop.example", "http://shop.example:8080/back", False),
    ("http://shop.example:443", "https://shop.example/back", False),
    ("HTTPS://Shop.Example:8443", "https://shop.example:8443/", True),
    ("http://[::1]:9000", "http://[::1]:9000/back", True),
    ("http://[::1]:9000", "http://[::1]/back", False),
    ("[::1]", "https://[::1]:1234/back", True),
    ("shop.example", "https://shop.example:99999/back", False),  # not a port
    ("https://shop.example", "https://shop.example:0x1bb/back", False),
]


@pytest.mark.parametrize(("entry", "url", "allowed"), CASES)
def test_an_entry_allows_what_it_names(settings: Any, entry: str, url: str, allowed: bool) -> None:
    settings.PAYMENTS_RETURN_HOSTS = [entry]

    assert return_host_allowed(url, shop=DEFAULT_SHOP) is allowed
    assert check_return_hosts() == []


def test_several_entries_each_allow_their_own(settings: Any) -> None:
    settings.PAYMENTS_RETURN_HOSTS = ["https://shop.example", "http://shop.example:8080"]

    assert return_host_allowed("https://shop.example/", shop=DEFAULT_SHOP)
    assert return_host_allowed("http://shop.example:8080/", shop=DEFAULT_SHOP)
    assert not return_host_allowed("http://shop.example/", shop=DEFAULT_SHOP)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/", "https://127.0.0.1/", "http://127.0.0.1:9/"]
)
def test_the_services_own_host_is_allowed_as_before(settings: Any, url: str) -> None:
    settings.PAYMENTS_RETURN_HOSTS = ["https://shop.example"]

    assert return_host_allowed(url, shop=DEFAULT_SHOP)


@pytest.mark.parametrize("entry", ["https://shop.example", "https://shop.example:443"])
@pytest.mark.parametrize("url", HOSTILE_RETURN_URLS)
def test_hostile_urls_stay_refused_with_an_origin(settings: Any, entry: str, url: str) -> None:
    settings.PAYMENTS_RETURN_HOSTS = [entry]

    assert not return_host_allowed(url, shop=DEFAULT_SHOP)


BAD_ENTRIES = [
    ("shop.example:8443", "scheme"),
    ("ftp://shop.example", "http or https"),
    ("https://", "host"),
    ("https://shop.example/thanks", "path"),
    ("https://shop.example?x=1", "path"),
    ("https://shop.example#top", "path"),
    ("https://user@shop.example", "user"),
    ("https://shop.example:99999", "port"),
    ("https://shop.example:https", "port"),
    ("*.shop.example", "host"),
    ("shop example", "host"),
    ("shop.example/", "path"),
    ("http://[::1", "host"),
]


@pytest.mark.parametrize(("entry", "says"), BAD_ENTRIES)
def test_a_bad_entry_is_a_system_check_error_naming_it(
    settings: Any, entry: str, says: str
) -> None:
    settings.PAYMENTS_RETURN_HOSTS = ["shop.example", entry]

    [error] = check_return_hosts()

    assert error.id == "payments.E008"
    assert error.is_serious()
    assert repr(entry) in error.msg and says in error.msg
    assert "https://shop.example:8443" in (error.hint or "")


def test_a_bad_entry_allows_nothing(settings: Any) -> None:
    settings.PAYMENTS_RETURN_HOSTS = ["shop.example:8443"]

    assert not return_host_allowed("https://shop.example:8443/back", shop=DEFAULT_SHOP)
    assert not return_host_allowed("https://shop.example/back", shop=DEFAULT_SHOP)


def test_blank_entries_are_ignored(settings: Any) -> None:
    settings.PAYMENTS_RETURN_HOSTS = ["shop.example", "", " "]

    assert check_return_hosts() == []
    assert return_host_allowed("https://shop.example/", shop=DEFAULT_SHOP)


def test_manage_py_refuses_to_start_with_a_bad_entry(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PAYMENTS_RETURN_HOSTS": "https://shop.example,shop.example:8443",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "payments.E008" in result.stderr and "'shop.example:8443'" in result.stderr
