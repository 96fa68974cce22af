from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path
from django.views.decorators.cache import cache_control
from django.views.generic import TemplateView
from django.views.static import serve

# The admin speaks like the site: its name, and the dash the site's pages use for "none".
admin.site.site_header = admin.site.site_title = "Kiln administration"
admin.site.empty_value_display = "—"

FAVICON = (settings.BASE_DIR / "config" / "favicon.svg").read_bytes()


@cache_control(public=True, max_age=7 * 24 * 3600)
def favicon(request: HttpRequest) -> HttpResponse:
    """Kiln's icon, at the address browsers ask for on every site (the admin's pages name none)."""
    return HttpResponse(FAVICON, content_type="image/svg+xml")


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path(
        "",
        TemplateView.as_view(
            template_name="home.html", extra_context={"flower_url": settings.KILN_FLOWER_URL}
        ),
        name="home",
    ),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("reports/", include("reports.urls")),
    path("api/images/", include("thumbnails.urls")),
    # Before admin/: the jobs dashboard lives under /admin/jobs/dashboard/.
    path("", include("jobs.urls")),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    # In production nginx serves /static/ and /media/; under `make run` (DEBUG) gunicorn serves them.
    urlpatterns += staticfiles_urlpatterns()
    # Renditions only: originals keep their metadata (GPS included) and are never served. The document
    # root is the renditions folder itself, so no path (`..`, encoded or not) can reach out of it.
    urlpatterns += [
        re_path(
            r"^media/renditions/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT / "renditions"}
        )
    ]
