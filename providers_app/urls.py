from django.urls import path

from config.sections import section_index

app_name = "providers"

urlpatterns = [
    path("", section_index("providers_app/index.html"), name="index"),
]
