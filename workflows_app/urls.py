from django.urls import path

from workflows_app import views

app_name = "workflows"

urlpatterns = [
    path("", views.workflow_list, name="index"),
    path("new/", views.workflow_new, name="new"),
    path("import/", views.workflow_import, name="import"),
    path("templates/<slug:key>/", views.template_use, name="template"),
    path("runs/<int:workflow_run_id>/", views.run_detail, name="run"),
    path("runs/<int:workflow_run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("<int:workflow_id>/", views.workflow_detail, name="detail"),
    path("<int:workflow_id>/edit/", views.workflow_edit, name="edit"),
    path("<int:workflow_id>/delete/", views.workflow_delete, name="delete"),
    path("<int:workflow_id>/run/", views.workflow_run, name="run_start"),
]
