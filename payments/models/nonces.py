"""The gateway nonce sequence."""

from __future__ import annotations

from django.db import models


class GatewayNonce(models.Model):
    """The last nonce handed out for a gateway API key, shared by every process.

    Written only by `payments.nonces.nonce_next`.
    """

    api_key = models.CharField(max_length=64, unique=True)
    last_value = models.BigIntegerField()
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "gateway nonce"

    def __str__(self) -> str:
        return f"{self.api_key}: {self.last_value}"
