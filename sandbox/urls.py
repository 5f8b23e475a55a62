"""URLs of the sandbox gateway, mounted at /sandbox/.

api/...                      the MtGox HTTP API v1 methods (GATEWAY_API_URL = .../sandbox/api/)
pay/<transaction>            the hosted payment page (payment_url) and its forms
<transaction>                the checkout button's link (PAYMENT_HOST/<txid>)
js/button.min.js, img/mtgox-checkout.png   the checkout button's assets
"""

from django.urls import URLPattern, URLResolver, path, re_path

from sandbox import api, views

app_name = "sandbox"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.index, name="index"),
    # --- API -------------------------------------------------------------------
    path("api/1/generic/private/merchant/order/create", api.order_create, name="api-order-create"),
    path("api/1/generic/private/info", api.info, name="api-info"),
    path("api/1/generic/private/wallet/history", api.wallet_history, name="api-wallet-history"),
    # The wiki's fallback path for the same method.
    path("api/1/generic/wallet/history", api.wallet_history),
    path("api/1/generic/currency", api.currency, name="api-currency"),
    re_path(r"^api/1/BTC(?P<currency>[^/]*)/ticker$", api.ticker, name="api-ticker"),
    # The same public methods under the v1 API's `public/` paths.
    path("api/1/generic/public/currency", api.currency),
    re_path(r"^api/1/BTC(?P<currency>[^/]*)/public/ticker$", api.ticker),
    re_path(r"^api/", api.unknown_method, name="api-unknown"),
    # --- The payer's side ------------------------------------------------------
    path("pay/<uuid:transaction>", views.pay_page, name="pay"),
    path("pay/<uuid:transaction>/pay", views.pay, name="pay-submit"),
    path("pay/<uuid:transaction>/cancel", views.cancel, name="cancel"),
    path("pay/<uuid:transaction>/confirm/<uuid:payment_id>", views.confirm, name="confirm"),
    path("<uuid:transaction>", views.button_link, name="button-link"),
    path("js/button.min.js", views.button_js, name="button-js"),
    path("img/mtgox-checkout.png", views.checkout_png, name="button-png"),
]
