"""What the demo shop sells: prices as exact decimal strings in each currency."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    slug: str
    name: str
    price: str
    currency: str


PRODUCTS = (
    Product("mug", "Bitcoin mug", "12.50", "USD"),
    Product("sticker", "Sticker pack", "3.20", "EUR"),
    Product("tshirt", "Gox T-shirt", "0.05", "BTC"),
    Product("tea", "Matcha tea", "1500", "JPY"),
)
BY_SLUG = {product.slug: product for product in PRODUCTS}
