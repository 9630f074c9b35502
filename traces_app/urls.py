from django.urls import path

from config.sections import section_index

app_name = "traces"

urlpatterns = [
    path("", section_index("traces_app/index.html"), name="index"),
]
