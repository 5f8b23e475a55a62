"""Everything the payments app serves, for one include in a project that installs it:

    path("payments/", include("payments.site_urls"))

gives <prefix>api/ (the orders API and its docs), <prefix>checkout/ (the payer's
pages) and <prefix>ipn/ (the gateway's notifications). The URL names are the
service's own, unnamespaced, so the IPN URL that orders give the gateway
(PUBLIC_BASE_URL + reverse("payments-ipn")) follows the prefix. The service
itself (merchant/urls.py) keeps its paths: /api/, /checkout/, /payments/ipn/.
"""

from django.urls import URLPattern, URLResolver, include, path

from payments import ipn

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/", include("payments.api.urls")),
    path("checkout/", include("payments.urls")),
    path("ipn/", ipn.receive, name="payments-ipn"),
]
