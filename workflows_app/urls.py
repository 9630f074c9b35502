from django.urls import path

from config.sections import section_index

app_name = "workflows"

urlpatterns = [
    path("", section_index("workflows_app/index.html"), name="index"),
]
