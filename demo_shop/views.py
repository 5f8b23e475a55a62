from __future__ import annotations

import secrets

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from demo_shop.catalog import BY_SLUG, PRODUCTS
from payments import money
from payments.exceptions import OrderCreationFailed
from payments.services import NewOrder, order_create, public_url


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "demo_shop/index.html", {"products": PRODUCTS})


@require_POST
def buy(request: HttpRequest, slug: str) -> HttpResponse:
    product = BY_SLUG.get(slug)
    if product is None:
        raise Http404("No such product")
    shop_home = public_url(path=reverse("demo-shop"))
    new = NewOrder(
        reference=f"demo-{product.slug}-{secrets.token_hex(4)}",
        amount_int=money.to_int(product.price, product.currency),
        currency=product.currency,
        description=f"{product.name} from the demo shop",
        return_success=shop_home,
        return_failure=shop_home,
    )
    try:
        order, _ = order_create(new=new)
    except OrderCreationFailed as failure:
        messages.error(
            request, f"The gateway did not take the order: {failure.order.failure_reason}"
        )
        return redirect("demo-shop")
    return redirect("checkout", order_id=order.id)
