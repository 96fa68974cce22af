"""Every URL of the jobs app, mounted at the site's root (config/urls.py): the dashboard and the schedules
page inside the admin's look, the endpoint nginx asks about Flower, and the two endpoints for machines."""

from __future__ import annotations

from django.urls import path

from jobs import dashboard, issue_views, views

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
    # Any text is taken as a fingerprint here: the views answer 404 for one that is not, never a 500.
    path("admin/jobs/issues/", issue_views.issue_list, name="issues"),
    path("admin/jobs/issues/<str:fingerprint>/", issue_views.issue_detail, name="issue"),
    path("admin/jobs/issues/<str:fingerprint>/retry/", issue_views.issue_retry, name="issue-retry"),
    path("admin/jobs/issues/<str:fingerprint>/forget/", issue_views.issue_forget, name="issue-forget"),
]
