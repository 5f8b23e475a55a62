"""Who calls the API: a shop, by one of its API tokens (`payments.models.ApiToken`).

A request sends `Authorization: Token <key>` (what clients have always sent) or
`Authorization: Bearer <key>`. The token is found by the SHA-256 of its key (one
indexed query); a revoked token, a token of a disabled shop and an unknown key
are each a 401 that says which. On success `request.auth` is the ApiToken (with
its shop) and `request.user` a `ShopCaller`: not a Django user (no row, no
password), so nothing that checks staff or permissions ever lets a token in.

`ShopTokenRequired` is the API's permission: a caller with a token, and a
read-only token for reads only (a write is a 403 `read_only_token`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from payments.api.error_codes import CODES
from payments.models import ApiToken, Shop
from payments.services.shops import MAX_KEY_LENGTH, api_token_touch
from payments.shops import api_token_for_key, api_token_refusal

KEYWORDS = (b"token", b"bearer")

REFUSALS = ("invalid_token", "token_revoked", "shop_disabled")


def refused(code: str) -> AuthenticationFailed:
    """The 401 for a token that is refused, saying why (one of REFUSALS)."""
    assert code in REFUSALS, code
    return AuthenticationFailed(CODES[code].detail, code=code)


class ShopCaller:
    """`request.user` for an API token: the shop calling, not a Django user.

    It has no database row, so an order it creates has no `created_by` (its
    `api_token` says who asked). `pk` is None, and it is never staff.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.shop: Shop = token.shop

    @property
    def username(self) -> str:
        return f"{self.shop.name}:{self.token.prefix}"

    def __str__(self) -> str:
        return f"API token {self.token.prefix}... of shop {self.shop.name}"


class ShopTokenAuthentication(BaseAuthentication):
    """`Token <key>` or `Bearer <key>`, over the shops' API tokens."""

    def authenticate(self, request: Request) -> tuple[ShopCaller, ApiToken] | None:
        words = get_authorization_header(request).split()
        if not words or words[0].lower() not in KEYWORDS:
            return None  # no credentials of ours: the permission answers 401
        if len(words) != 2 or len(words[1]) > MAX_KEY_LENGTH:  # longer than any token
            raise refused("invalid_token")
        try:
            key = words[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise refused("invalid_token") from exc
        token = api_token_for_key(key=key)
        if token is None:
            raise refused(api_token_refusal(key=key))
        api_token_touch(token=token)
        return ShopCaller(token), token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) without credentials, naming the scheme to use.
        return 'Token realm="api"'


class ShopTokenRequired(BasePermission):
    """A shop's API token; a read-only one may only read."""

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            raise NotAuthenticated(CODES["not_authenticated"].detail, code="not_authenticated")
        if token.read_only and request.method not in SAFE_METHODS:
            raise PermissionDenied(CODES["read_only_token"].detail, code="read_only_token")
        return True


def request_token(request: Request) -> ApiToken:
    """The calling token (with its shop) of a request `ShopTokenRequired` let in."""
    token = request.auth
    assert isinstance(token, ApiToken), "the view is not behind ShopTokenRequired"
    return token


class ShopTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security schemes: the same token under either keyword."""

    target_class = ShopTokenAuthentication
    name = ["tokenAuth", "bearerAuth"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"tokenAuth": []}, {"bearerAuth": []}]  # either one (OR)

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        about = "A shop's API token (`manage.py shop_token`); read-only tokens may only GET."
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": f'{about} Send "Token <key>".',
            },
            {"type": "http", "scheme": "bearer", "description": f'{about} Send "Bearer <key>".'},
        ]
