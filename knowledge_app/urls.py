from django.urls import path

from knowledge_app import views

app_name = "knowledge"

urlpatterns = [
    path("", views.store_list, name="index"),
    path("new/", views.store_add, name="add"),
    path("<int:store_id>/", views.store_detail, name="store"),
    path("<int:store_id>/edit/", views.store_edit, name="edit"),
    path("<int:store_id>/delete/", views.store_delete, name="delete"),
    path("<int:store_id>/upload/", views.file_upload, name="upload"),
    path("<int:store_id>/search/", views.store_search, name="search"),
    path("<int:store_id>/files/<int:file_id>/delete/", views.file_delete, name="file_delete"),
    path("<int:store_id>/files/<int:file_id>/reingest/", views.file_reingest, name="file_reingest"),
]
