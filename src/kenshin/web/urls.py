from django.urls import path

from kenshin.web import views

app_name = "web"
urlpatterns = [
    path("", views.home, name="home"),
    path("jobs/<slug:job_id>/", views.job_progress, name="job_progress"),
]
