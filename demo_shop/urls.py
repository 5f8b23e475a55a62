from django.urls import path

from demo_shop import views

urlpatterns = [
    path("", views.index, name="demo-shop"),
    path("buy/<slug:slug>/", views.buy, name="demo-shop-buy"),
]
