from django.urls import path

from agents_app import views

app_name = "agents"

urlpatterns = [
    path("", views.agent_list, name="index"),
    path("new/", views.agent_new, name="new"),
    path("import/", views.agent_import, name="import"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/meta/", views.run_meta, name="run_meta"),
    path("<int:agent_id>/", views.agent_detail, name="detail"),
    path("<int:agent_id>/edit/", views.agent_edit, name="edit"),
    path("<int:agent_id>/delete/", views.agent_delete, name="delete"),
    path("<int:agent_id>/chat/", views.agent_chat, name="chat"),
    path("<int:agent_id>/try/", views.agent_try, name="try"),
    path("<int:agent_id>/handoffs/", views.handoff_add, name="handoff_add"),
    path("<int:agent_id>/handoffs/<int:target_id>/remove/", views.handoff_remove, name="handoff_remove"),
    path("<int:agent_id>/contexts/", views.context_add, name="context_add"),
    path("<int:agent_id>/contexts/<int:context_id>/delete/", views.context_delete, name="context_delete"),
]
