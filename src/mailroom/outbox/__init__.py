"""The durable outbox: tables, migrations and the named queries on them."""
