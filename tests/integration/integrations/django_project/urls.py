"""The test project's URLs (``ROOT_URLCONF``)."""

from __future__ import annotations

from django.urls import path

from integration.integrations.django_project.shop import views

urlpatterns = [path("orders/place/", views.place_order)]
