from django.urls import path

from config.sections import section_index

app_name = "agents"

urlpatterns = [
    path("", section_index("agents_app/index.html"), name="index"),
]
