"""Mailroom inside other frameworks: logging (and later Django, Celery, SMTP submission)."""
