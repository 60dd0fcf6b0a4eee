"""Delivery: the worker that drains the outbox, retry decisions and throttling."""
