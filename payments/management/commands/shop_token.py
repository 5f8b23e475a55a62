"""`python manage.py shop_token NAME [--name N] [--read-only]`: a new API token for the shop.

The key is printed once; only its SHA-256 is stored. `--list` shows the shop's
tokens (by prefix, never a key); `--revoke PREFIX` refuses one from now on
(the prefix `--list` shows, or the whole key).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.management.shops import shop_named, write_new_key
from payments.models import ApiToken, Shop
from payments.services.shops import api_token_create, api_token_revoke
from payments.shops import api_tokens_matching, api_tokens_of


class Command(BaseCommand):
    help = "Make a new API token for a shop (or list or revoke its tokens)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("shop", help="The shop's name.")
        parser.add_argument("--name", default="", help="What the token is for (e.g. 'web').")
        parser.add_argument(
            "--read-only", action="store_true", help="The token may read orders, not create."
        )
        other = parser.add_mutually_exclusive_group()
        other.add_argument("--list", action="store_true", help="List the shop's tokens.")
        other.add_argument(
            "--revoke", metavar="PREFIX", help="Revoke the token with this prefix (or key)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        shop = shop_named(options["shop"])
        if options["list"]:
            self._list(shop)
        elif options["revoke"] is not None:
            self._revoke(shop, options["revoke"].strip())
        else:
            name = options["name"].strip() or "token"
            token, key = api_token_create(shop=shop, name=name, read_only=options["read_only"])
            kind = "read-only API token" if token.read_only else "API token"
            self.stdout.write(self.style.SUCCESS(f"New {kind} {name!r} for shop {shop.name}"))
            write_new_key(self.stdout, key, shop=shop)

    def _list(self, shop: Shop) -> None:
        for token in api_tokens_of(shop=shop):
            self.stdout.write(_token_line(token))

    def _revoke(self, shop: Shop, given: str) -> None:
        if not given.rstrip("."):
            raise CommandError("--revoke needs a token's prefix (`--list` shows them)")
        matching = api_tokens_matching(shop=shop, given=given)
        if not matching:
            raise CommandError(
                f"shop {shop.name} has no live token {given!r} (`--list` shows its tokens)"
            )
        if len(matching) > 1:
            raise CommandError(
                f"{len(matching)} live tokens of shop {shop.name} have the prefix {given!r}: "
                "give the whole key"
            )
        api_token_revoke(token=matching[0])
        self.stdout.write(self.style.SUCCESS(f"Revoked: {matching[0]} of shop {shop.name}"))


def _token_line(token: ApiToken) -> str:
    state = "revoked" if token.revoked_at else ("read-only" if token.read_only else "read-write")
    used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
    made = token.created.isoformat(timespec="seconds")
    return f"{token.prefix}...  {state:10}  created {made}  last used {used}  {token.name}"
