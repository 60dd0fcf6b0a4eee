from __future__ import annotations

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "integration.integrations.django_project.shop"
    label = "shop"
