"""URL routes: pages per app, the API under /api/v1, the admin, and health probes."""

from django.contrib import admin
from django.urls import include, path

from config.api import api
from config.health import healthz, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts_app.urls")),
    path("agents/", include("agents_app.urls")),
    path("workflows/", include("workflows_app.urls")),
    path("knowledge/", include("knowledge_app.urls")),
    path("providers/", include("providers_app.urls")),
    path("traces/", include("traces_app.urls")),
    path("", include("accounts_app.urls_workspace")),
]

handler400 = "config.error_views.bad_request"
