"""Staff review: orders with their payments, flags and notifications; shop events; a dashboard.

Money and gateway fields are read-only: they change only through the
services (the gateway's notifications and reconciliation). Actions call
services too (payments.services.review), each bounded to 500 rows.

Who may do what (groups made by `manage.py create_review_roles`):

- staff only (Django's admin_view); a staff user without permissions sees nothing;
- on which rows: the orders (and all that hangs on them) of the shops the user
  works for (ShopMembership; `base.ShopScopedAdmin`, another shop's object is a
  404); staff of no shop see no order; superusers see every shop, with a shop
  filter; records of the whole service are theirs only (`base.SuperuserOnlyAdmin`);
- view permissions: every list, every page, the dashboard, CSV export;
- change permission on flags ("Payments reviewers"): mark flags reviewed, and resolve
  orders (accept as paid, mark invalid, cancel, record a refund: `resolve`);
- add / change permissions on API tokens ("Shop token managers"): make and revoke them;
- change permission on orders (superusers): reconcile selected orders;
- replaying a notification, adding or changing a shop: superusers only.

Built for a million orders and millions of notifications: no full COUNT(*)
(EstimatedCountPaginator), filters with fixed choices on indexed columns,
searches that are exact index lookups, sorting only on indexed columns, no
date drill-down (date_hierarchy) and no facet counts.

The modules, by concern:

- `base`: read-only base classes, the scale-safe changelist, shared columns, the
  scoping to the user's shops;
- `pagination`, `filters`, `csv` (exports), `actions` (what actions share);
- the model admins: `orders` (orders, payments), `notifications`, `flags`
  (flags, reviews, resolutions), `reconciliation`, `shop_events`, `shops`
  (shops, API tokens, memberships);
- the pages beyond the model admins, mounted by OrderAdmin.get_urls:
  `dashboard`, `review` (reviewing flags), `resolve` (resolving an order).

Django's admin autodiscovery imports this package; importing the model admins'
modules here registers them.
"""

from payments.admin import flags, notifications, orders, reconciliation, shop_events, shops

__all__ = ["flags", "notifications", "orders", "reconciliation", "shop_events", "shops"]
