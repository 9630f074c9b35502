from django.urls import path

from providers_app import views

app_name = "providers"

urlpatterns = [
    path("", views.provider_list, name="index"),
    path("add/", views.provider_add, name="add"),
    path("local/test/", views.provider_test, name="test_local"),
    path("local/default/", views.provider_default, name="default_local"),
    path("<int:provider_id>/", views.provider_edit, name="edit"),
    path("<int:provider_id>/test/", views.provider_test, name="test"),
    path("<int:provider_id>/default/", views.provider_default, name="default"),
    path("<int:provider_id>/delete/", views.provider_delete, name="delete"),
]
