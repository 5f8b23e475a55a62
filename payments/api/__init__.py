"""The REST API for shop backends: create orders, follow them."""
