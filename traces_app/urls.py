from django.urls import path

from traces_app import views

app_name = "traces"

urlpatterns = [
    path("", views.trace_list, name="index"),
    path("retention/", views.retention_set, name="retention"),
    path("forwarding/", views.forwarding_set, name="forwarding"),
    path("<str:trace_id>/", views.trace_detail, name="detail"),
    path("<str:trace_id>/spans/<str:span_id>/", views.span_detail, name="span"),
]
