"""Every URL of the jobs app, mounted at the site's root (config/urls.py): the dashboard and the schedules
page inside the admin's look, the endpoint nginx asks about Flower, and the two endpoints for machines."""

from __future__ import annotations

from django.urls import path

from jobs import dashboard, views

app_name = "jobs"

urlpatterns = [
    path("admin/jobs/dashboard/", dashboard.dashboard, name="dashboard"),
    path("admin/jobs/dashboard/data/", dashboard.dashboard_data, name="dashboard-data"),
    path("admin/jobs/dashboard/action/", dashboard.dashboard_action, name="dashboard-action"),
    path("admin/jobs/tasks/", dashboard.tasks, name="tasks"),
    path("admin/jobs/tasks/<str:task_name>/", dashboard.task, name="task"),
    path("admin/jobs/schedules/", dashboard.schedules, name="schedules"),
    path("jobs/flower-auth/", views.flower_auth, name="flower-auth"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
]
