"""The application's own data, committed (or not) with the mail about it."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    number: models.CharField[str, str] = models.CharField(max_length=32, unique=True)
