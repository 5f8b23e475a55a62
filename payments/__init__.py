"""Everything about orders and payments: the protocol client, services, IPN, API, admin."""
