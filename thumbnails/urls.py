from __future__ import annotations

from django.urls import path

from thumbnails import views

app_name = "thumbnails"

urlpatterns = [
    path("", views.images_api, name="images"),
    path("<int:pk>/", views.image_detail_api, name="image-detail"),
]
