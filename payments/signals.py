"""Signals an in-process shop can listen to. Each is sent after the commit that caused it.

- `order_paid(order)`: the order is paid (also when money arrived late).
- `order_confirming(order)`: bitcoins were seen and are confirming (IPN `partial`).
- `order_cancelled(order)`: the payer cancelled.
- `order_expired(order)`: nobody paid before the deadline.
- `order_flagged(order, flag)`: something needs a person (underpaid, late, mismatch...).

Receivers run in the process that made the change; a receiver that raises
does not undo it. `sender` is the Order class.
"""

from django.dispatch import Signal

order_paid = Signal()
order_confirming = Signal()
order_cancelled = Signal()
order_expired = Signal()
order_flagged = Signal()
