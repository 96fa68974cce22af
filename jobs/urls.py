from __future__ import annotations

from django.urls import path

from jobs import views

app_name = "jobs"

urlpatterns = [
    path("flower-auth/", views.flower_auth, name="flower-auth"),
]
