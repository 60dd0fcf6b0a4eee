"""Settings of the Django project the integration tests run: a real project with an app of
its own (``shop``), sending through Mailroom.

The databases come from the environment the test fixture sets before ``django.setup()``:
``DJANGO_PROJECT_SQLITE`` (a file) as ``default``, and, when PostgreSQL is there,
``DJANGO_PROJECT_POSTGRES`` (HOST, PORT, USER, PASSWORD and NAME, as JSON) as ``pg``.
"""

from __future__ import annotations

import json
import os
from typing import Any

SECRET_KEY = "django-project-for-tests-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver", "example.com"]
ROOT_URLCONF = "integration.integrations.django_project.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "mailroom.integrations.django",
    "integration.integrations.django_project.shop",
]
TEMPLATES = [
    {"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": True}
]
DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["DJANGO_PROJECT_SQLITE"],
        # What the README recommends beside a worker: wait for the worker's write lock, and
        # take it when a block begins.
        # DJANGO_PROJECT_SQLITE_OPTIONS (JSON) replaces them, for the system check's test.
        "OPTIONS": json.loads(
            os.environ.get(
                "DJANGO_PROJECT_SQLITE_OPTIONS", '{"timeout": 20, "transaction_mode": "IMMEDIATE"}'
            )
        ),
    }
}
if os.environ.get("DJANGO_PROJECT_POSTGRES"):
    DATABASES["pg"] = {
        "ENGINE": "django.db.backends.postgresql",
        **json.loads(os.environ["DJANGO_PROJECT_POSTGRES"]),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMAIL_BACKEND = "mailroom.integrations.django.EmailBackend"
EMAIL_HOST = "127.0.0.1"
# Each test points it at its own aiosmtpd server (override_settings in the test process, the
# environment for a manage.py process).
EMAIL_PORT = int(os.environ.get("DJANGO_PROJECT_EMAIL_PORT", "25"))
DEFAULT_FROM_EMAIL = "Shop <shop@example.com>"
SERVER_EMAIL = "errors@example.com"
ADMINS = [("Ada Admin", "ada@example.com"), ("Bob", "bob@example.com")]
MANAGERS = [("Mia Manager", "mia@example.com")]
EMAIL_SUBJECT_PREFIX = "[shop] "
MAILROOM: dict[str, Any] = {"DATABASE": "default"}
