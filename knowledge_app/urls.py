from django.urls import path

from config.sections import section_index

app_name = "knowledge"

urlpatterns = [
    path("", section_index("knowledge_app/index.html"), name="index"),
]
