from __future__ import annotations

from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("", views.report_list, name="list"),
    path("<int:pk>/", views.report_detail, name="detail"),
    path("<int:pk>/upload/", views.report_upload, name="upload"),
    path("<int:pk>/sharing/", views.report_sharing, name="sharing"),
    path("<int:pk>/images/<int:image_pk>/retry/", views.report_image_retry, name="image-retry"),
    path("<int:pk>/delete/", views.report_delete, name="delete"),
    path("<int:pk>/images/<int:image_pk>/", views.report_image, name="image"),
    path("<int:pk>/images/<int:image_pk>/delete/", views.report_image_delete, name="image-delete"),
]
