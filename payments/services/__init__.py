"""Every write and every state change of the payments app.

Named `<entity>_<action>` with keyword-only arguments. Nothing here knows of
HTTP requests: views and tasks translate their input and call one function.
"""

from payments.services.notifications import (
    notification_apply,
    notification_apply_safely,
    notification_receive,
    notification_reject_record,
)
from payments.services.orders import (
    NewOrder,
    order_create,
    order_flag,
    order_transition,
    public_url,
)

__all__ = (
    "NewOrder",
    "notification_apply",
    "notification_apply_safely",
    "notification_receive",
    "notification_reject_record",
    "order_create",
    "order_flag",
    "order_transition",
    "public_url",
)
