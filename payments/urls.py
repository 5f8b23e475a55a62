"""The payer's checkout pages."""

from django.urls import path

from payments import views

urlpatterns = [
    path("<uuid:order_id>/", views.checkout, name="checkout"),
    path(
        "<uuid:order_id>/success/",
        views.checkout_return,
        {"outcome": "success"},
        name="checkout-success",
    ),
    path(
        "<uuid:order_id>/failure/",
        views.checkout_return,
        {"outcome": "failure"},
        name="checkout-failure",
    ),
    path("<uuid:order_id>/status/", views.checkout_status, name="checkout-status"),
]
