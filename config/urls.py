from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path
from django.views.generic import TemplateView

urlpatterns = [
    path(
        "",
        TemplateView.as_view(
            template_name="home.html", extra_context={"flower_url": settings.KILN_FLOWER_URL}
        ),
        name="home",
    ),
    path("admin/", admin.site.urls),
]

# In production nginx serves /static/; under `make run` (DEBUG) gunicorn serves them through Django.
urlpatterns += staticfiles_urlpatterns()
