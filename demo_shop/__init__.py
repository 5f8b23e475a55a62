"""A small demo shop at / (development): buy something and go through the whole flow.

It plays the shop's part: it asks the payments service for an order and
sends the visitor to the checkout page.
"""
