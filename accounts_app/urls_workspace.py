"""Workspace-scoped pages at the site root: dashboard, usage, settings, tokens, workspaces."""

from django.urls import path

from accounts_app import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("usage/", views.usage, name="usage"),
    path("workspaces/", views.workspace_list, name="workspaces"),
    path("workspaces/switch/", views.workspace_switch, name="workspace_switch"),
    path("invitations/<int:invitation_id>/<str:answer>/", views.invitation_respond, name="invitation_respond"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/rename/", views.workspace_rename, name="workspace_rename"),
    path("settings/delete/", views.workspace_delete, name="workspace_delete"),
    path("settings/members/<int:user_id>/role/", views.member_role, name="member_role"),
    path("settings/members/<int:user_id>/remove/", views.member_remove, name="member_remove"),
    path("settings/invitations/", views.invitation_create, name="invitation_create"),
    path("settings/invitations/<int:invitation_id>/cancel/", views.invitation_cancel, name="invitation_cancel"),
    path("settings/tokens/", views.tokens_page, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
]
