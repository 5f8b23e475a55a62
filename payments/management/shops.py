"""What the shop commands share: finding a shop by name, reading a secret, printing a token."""

from __future__ import annotations

import argparse
import os
import shlex
import uuid
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.management.base import CommandError, OutputWrapper

from payments.gateway.signing import secret_valid
from payments.models import Shop
from payments.shops import shop_for_name


def shop_named(name: str) -> Shop:
    """The shop with this name, or a CommandError that says there is none."""
    shop = shop_for_name(name=name)
    if shop is None:
        raise CommandError(f"no shop named {name!r} (`manage.py shop_list` lists them)")
    return shop


def gateway_key(text: str) -> uuid.UUID:
    """--gateway-key: the gateway's API key id, a UUID."""
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a gateway API key id (a UUID such as "
            "0f8fad5b-d9cb-469f-a165-70867728950e)"
        ) from exc


def fraction(text: str) -> Decimal:
    """--underpaid-tolerance: a decimal fraction (0.01 is 1 %)."""
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal fraction") from exc


def positive_int(text: str) -> int:
    """--order-ttl: whole seconds, at least 1."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1 second")
    return value


def secret_from_file(path: str) -> str:
    """The gateway secret in a file (whitespace around it ignored), checked to be base64.

    Read from a file, never from the command line: arguments are visible to every
    user of the machine (`ps`) and kept in shell histories.
    """
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read the gateway secret file {path}: {exc}") from exc
    if not secret_valid(text):
        raise CommandError(
            f"the gateway secret file {path} does not hold a base64 secret, as the gateway gives it"
        )
    return text


def secret_env_warning(name: str) -> str | None:
    """A warning when the variable named by --gateway-secret-env is not set here (the
    service's processes may have it); CommandError when it is set but not a secret."""
    value = os.environ.get(name)
    if not value:
        return (
            f"{name} is not set in this environment: the shop can create no order until "
            "the service's processes have it"
        )
    if not secret_valid(value):
        raise CommandError(f"{name} does not hold a base64 secret, as the gateway gives it")
    return None


def write_new_key(out: OutputWrapper, key: str, *, shop: Shop) -> None:
    """A new API token's key: printed this once, never stored in clear."""
    out.write(f"API token: {key}")
    out.write(
        f"  (shown only this once; `manage.py shop_token {shlex.quote(shop.name)}` makes "
        "another, `--revoke PREFIX` refuses one)"
    )
